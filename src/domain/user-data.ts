import { createDecipheriv, createHash, createHmac, timingSafeEqual } from "node:crypto";
import { IdentityError } from "./errors.js";

/**
 * WeChat's encrypted user data (encryptedData / iv, docs/wechat.md): AES-128-CBC with PKCS#7 padding
 * under the user's session_key, a JSON object carrying a watermark; and the rawData signature,
 * hex(sha1(rawData + session_key)).
 */

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes base64 the way clients damage it in transit: URL-encoded, `+` turned into spaces,
 * line breaks, the URL-safe alphabet, missing padding. Anything else is BAD_BASE64 naming the
 * field and the problem.
 */
export function decodeDamagedBase64(field: string, value: string): Buffer {
  // Line breaks first: they may fall inside a %XX escape.
  let text = value.replace(/[\r\n\t]/g, "");
  if (text.includes("%")) {
    try {
      text = decodeURIComponent(text);
    } catch {
      throw badBase64(field, "broken URL encoding");
    }
  }
  // A space is a `+` that form decoding turned into one (even at either end), never padding.
  text = text.replace(/ /g, "+").replace(/-/g, "+").replace(/_/g, "/");
  if (text.length === 0) throw badBase64(field, "empty");
  if (!BASE64.test(text)) throw badBase64(field, "characters outside base64");
  const unpadded = text.replace(/=+$/, "");
  if (unpadded.length % 4 === 1) throw badBase64(field, "wrong length (truncated?)");
  return Buffer.from(unpadded, "base64");
}

const badBase64 = (field: string, problem: string) =>
  new IdentityError("BAD_BASE64", `${field}: not valid base64: ${problem}`, { field });

/** The service holds no current session_key for the user: only a new wx.login() gives one. */
export const sessionKeyExpired = (why = "is no longer held") =>
  new IdentityError(
    "SESSION_KEY_EXPIRED",
    `the session_key for this user ${why}: call wx.login() and log in again`,
  );

/** The one answer to every failure inside a decryption, so that none can serve as an oracle. */
export const decryptFailed = () =>
  new IdentityError(
    "DECRYPT_FAILED",
    "encrypted_data: could not be decrypted with this user's session_key (stale data, or not this user's)",
    { field: "encrypted_data" },
  );

export interface DecryptedUserData {
  /** The plaintext exactly as WeChat produced it. */
  json: string;
  data: Record<string, unknown>;
  watermark: { appId: string; timestamp: number };
}

/**
 * Decrypts with one session_key; undefined when this key does not give a JSON object with a
 * watermark (wrong key, bad padding, garbage), so the caller can try the previous key.
 */
export function decryptWithKey(
  sessionKey: string,
  iv: Buffer,
  encrypted: Buffer,
): DecryptedUserData | undefined {
  const key = Buffer.from(sessionKey, "base64");
  if (key.length !== 16 || encrypted.length === 0 || encrypted.length % 16 !== 0) return undefined;
  let json: string;
  try {
    const decipher = createDecipheriv("aes-128-cbc", key, iv); // PKCS#7 checked on final()
    json = Buffer.concat([decipher.update(encrypted), decipher.final()]).toString("utf8");
  } catch {
    return undefined;
  }
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) return undefined;
  const watermark = (data as { watermark?: unknown }).watermark as { appid?: unknown; timestamp?: unknown };
  if (typeof watermark?.appid !== "string" || typeof watermark.timestamp !== "number") return undefined;
  return {
    json,
    data: data as Record<string, unknown>,
    watermark: { appId: watermark.appid, timestamp: watermark.timestamp },
  };
}

/** hex(sha1(rawData + session_key)). */
export function rawDataSignature(rawData: string, sessionKey: string): string {
  return createHash("sha1")
    .update(rawData + sessionKey)
    .digest("hex");
}

/** checksession's signature: hex(hmac_sha256(key = the session_key as text, message)). */
export function sessionKeySignature(sessionKey: string, message = ""): string {
  return createHmac("sha256", sessionKey).update(message).digest("hex");
}

/** Compares a presented signature with the expected one in constant time. */
export function signatureMatches(presented: string, expected: string): boolean {
  const a = Buffer.from(presented.trim().toLowerCase());
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
