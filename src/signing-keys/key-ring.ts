import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes } from "node:crypto";
import type { Clock, SigningKeyStore, StoredSigningKey } from "../domain/ports.js";
import type { Sealer } from "../domain/sealing.js";
import { SIGNING_ALG, type SigningKey, type TokenSettings } from "../domain/tokens.js";
import { createWatchers } from "../util/watchers.js";
import { createKeySchedule, type PublishedKey, publishedKey } from "./key-schedule.js";

export interface KeyRotationSettings {
  /** A new key is published this long before it signs (every instance and JWKS cache sees it first). */
  publishAheadMs: number;
  /** The replaced key keeps verifying this long after the new one activates: the longest access-token life. */
  retireAfterMs: number;
  /** With a schedule, load() rotates when the newest key is this old; 0 = by command only. */
  rotationIntervalMs: number;
}

/** The schedule the configuration implies: a key retires once every token it signed has expired. */
export function keyRotationSettings(
  signingKeys: { publishAheadMs: number; rotationIntervalMs: number },
  tokens: Pick<TokenSettings, "accessTokenTtlMs" | "leewayMs">,
): KeyRotationSettings {
  return {
    publishAheadMs: signingKeys.publishAheadMs,
    retireAfterMs: tokens.accessTokenTtlMs + tokens.leewayMs,
    rotationIntervalMs: signingKeys.rotationIntervalMs,
  };
}

/**
 * The signing keys in memory: the stored keys, their schedule (createKeySchedule), and the private
 * key of the one that signs, opened when first needed.
 *
 * Rotation adds a key that activates `publishAheadMs` later and retires the current ones
 * `retireAfterMs` after that, so a token signed just before the switch verifies until it expires.
 * Instances reload (load()) every minute and when told, well within `publishAheadMs`.
 */
export function createKeyRing(deps: {
  store: SigningKeyStore;
  sealer: Sealer;
  clock: Clock;
  settings: KeyRotationSettings;
}) {
  let stored: StoredSigningKey[] = [];
  const schedule = createKeySchedule(deps.clock);
  const privateKeys = new Map<string, KeyObject>();
  const watchers = createWatchers<readonly PublishedKey[]>();
  let published: readonly PublishedKey[] = [];
  let signing: SigningKey | undefined;

  function generate(now: Date, activatesAt: Date): StoredSigningKey {
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const { kty, crv, x, y } = publicKey.export({ format: "jwk" }) as Record<string, string>;
    return {
      kid: `${activatesAt.toISOString().slice(0, 10).replaceAll("-", "")}-${randomBytes(6).toString("base64url")}`,
      alg: SIGNING_ALG,
      publicJwk: { kty, crv, x, y } as Record<string, string>,
      sealedPrivateKey: deps.sealer.seal(privateKey.export({ format: "pem", type: "pkcs8" }).toString()),
      createdAt: now,
      activatesAt,
      retiresAt: null,
    };
  }

  function signingKey(): SigningKey {
    const { kid } = schedule.activeKey();
    if (signing?.kid !== kid) {
      let privateKey = privateKeys.get(kid);
      if (!privateKey) {
        const key = stored.find((k) => k.kid === kid) as StoredSigningKey;
        privateKey = createPrivateKey(deps.sealer.open(key.sealedPrivateKey));
        privateKeys.set(kid, privateKey);
      }
      signing = { kid, privateKey };
    }
    return signing;
  }

  function accept(keys: StoredSigningKey[]) {
    stored = [...keys].sort((a, b) => a.activatesAt.getTime() - b.activatesAt.getTime());
    schedule.accept(stored);
    signingKey(); // fails now, not at the first sign, if the key cannot be opened
    published = stored.map(publishedKey);
    watchers.notify(published);
  }

  const ring = {
    /**
     * Reloads the keys from the store, creating the first one if there is none, and rotating
     * first when a schedule is set and the newest key has reached its age. Returns true when this
     * call rotated (the caller tells the other instances).
     */
    async load(): Promise<boolean> {
      const now = new Date(deps.clock.now());
      accept(await deps.store.ensureSigningKey(now, () => generate(now, now)));
      const { rotationIntervalMs } = deps.settings;
      const newest = stored.reduce((a, b) => (a.createdAt > b.createdAt ? a : b));
      if (rotationIntervalMs > 0 && newest.createdAt.getTime() + rotationIntervalMs <= now.getTime()) {
        return (await ring.rotate()).rotated;
      }
      return false;
    },

    /**
     * Publishes a new key that signs from `publishAheadMs` on; the current keys retire
     * `retireAfterMs` after that. Does nothing while another new key is still waiting.
     */
    async rotate(): Promise<{ rotated: boolean; next: StoredSigningKey }> {
      const now = new Date(deps.clock.now());
      const activatesAt = new Date(now.getTime() + deps.settings.publishAheadMs);
      const result = await deps.store.rotate(
        now,
        generate(now, activatesAt),
        new Date(activatesAt.getTime() + deps.settings.retireAfterMs),
      );
      accept(result.keys);
      return { rotated: result.rotated, next: stored.at(-1) as StoredSigningKey };
    },

    signingKey,
    verificationKeys: schedule.verificationKeys,
    jwks: schedule.jwks,
    /** The stored keys with their schedule (for the rotation command's report). */
    keys: (): readonly StoredSigningKey[] => stored,
    /** The public halves of the keys with their schedule: what the gRPC thread is given. */
    publishedKeys: (): readonly PublishedKey[] => published,
    /** Calls `watch` with the public halves of the keys each time they are (re)loaded; returns the stop. */
    watch: watchers.watch,
  };
  return ring;
}

export type KeyRing = ReturnType<typeof createKeyRing>;
