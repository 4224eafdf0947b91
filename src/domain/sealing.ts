import { createCipheriv, createDecipheriv, hkdfSync } from "node:crypto";
import { secureRandomBytes } from "../util/random-bytes.js";

/**
 * Encryption at rest for secrets we must keep (WeChat session_keys, signing private keys).
 * AES-256-GCM with a key derived per purpose from the key-encryption key, so a value sealed for
 * one purpose cannot be opened as another. Format: base64url(iv[12] | tag[16] | ciphertext).
 */
export interface Sealer {
  seal(plaintext: string): string;
  /** Throws SealedValueError when the value was not sealed by this key and purpose. */
  open(sealed: string): string;
}

/** A sealed value that does not open: another key-encryption key, another purpose, or tampering. */
export class SealedValueError extends Error {
  override readonly name = "SealedValueError";
}

export function createSealer(keyEncryptionKey: Buffer, purpose: string): Sealer {
  if (keyEncryptionKey.length !== 32) throw new Error("the key-encryption key must be 32 bytes");
  const key = Buffer.from(hkdfSync("sha256", keyEncryptionKey, Buffer.alloc(0), `identity:${purpose}`, 32));
  const aad = Buffer.from(purpose);
  return {
    seal(plaintext) {
      const iv = secureRandomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      cipher.setAAD(aad);
      const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url");
    },
    open(sealed) {
      const raw = Buffer.from(sealed, "base64url");
      if (raw.length < 28) throw new SealedValueError("sealed value too short");
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
        decipher.setAAD(aad);
        decipher.setAuthTag(raw.subarray(12, 28));
        return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
      } catch {
        throw new SealedValueError(`a value sealed for ${purpose} does not open with this key`);
      }
    },
  };
}
