import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import type { Clock, SigningKeyStore, StoredSigningKey } from "../domain/ports.js";
import type { Sealer } from "../domain/sealing.js";
import { SIGNING_ALG, type SigningKey } from "../domain/tokens.js";

/** A published verification key: the stored public JWK plus kid, alg and use. */
export type PublicJwk = Record<string, string> & { kid: string; alg: string; use: "sig" };

/**
 * The signing keys in memory: which key signs now, which keys verify (by kid), and the JWKS that
 * publishes them. Loaded from Postgres; the first instance to start creates the first key.
 */
export function createKeyRing(deps: { store: SigningKeyStore; sealer: Sealer; clock: Clock }) {
  let signing: SigningKey | null = null;
  let verification = new Map<string, KeyObject>();
  let jwks: { keys: PublicJwk[] } = { keys: [] };

  function generate(now: Date): StoredSigningKey {
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const { kty, crv, x, y } = publicKey.export({ format: "jwk" }) as Record<string, string>;
    return {
      kid: `${now.toISOString().slice(0, 10).replaceAll("-", "")}-${randomBytes(6).toString("base64url")}`,
      alg: SIGNING_ALG,
      publicJwk: { kty, crv, x, y } as Record<string, string>,
      sealedPrivateKey: deps.sealer.seal(privateKey.export({ format: "pem", type: "pkcs8" }).toString()),
      createdAt: now,
      activatesAt: now,
      retiresAt: null,
    };
  }

  return {
    /** Reloads the keys from the store (creating the first one if needed). */
    async load(): Promise<void> {
      const now = new Date(deps.clock.now());
      const keys = await deps.store.ensureSigningKey(now, () => generate(now));
      const active = keys.filter((k) => k.activatesAt <= now).at(-1);
      if (!active) throw new Error("no signing key is active");
      signing = { kid: active.kid, privateKey: createPrivateKey(deps.sealer.open(active.sealedPrivateKey)) };
      verification = new Map(
        keys.map((k) => [k.kid, createPublicKey({ key: { ...k.publicJwk }, format: "jwk" })] as const),
      );
      jwks = { keys: keys.map((k) => ({ ...k.publicJwk, kid: k.kid, alg: k.alg, use: "sig" as const })) };
    },
    signingKey(): SigningKey {
      if (!signing) throw new Error("key ring not loaded");
      return signing;
    },
    verificationKeys: (): ReadonlyMap<string, KeyObject> => verification,
    jwks: () => jwks,
  };
}

export type KeyRing = ReturnType<typeof createKeyRing>;
