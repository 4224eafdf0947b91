import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import type { Broadcast, Clock, SigningKeyStore, StoredSigningKey } from "../domain/ports.js";
import type { Sealer } from "../domain/sealing.js";
import { SIGNING_ALG, type SigningKey } from "../domain/tokens.js";
import { errorSummary, type Logger } from "../util/logger.js";
import { createWatchers } from "../util/watchers.js";

/** A published verification key: the stored public JWK plus kid, alg and use. */
export type PublicJwk = Record<string, string> & { kid: string; alg: string; use: "sig" };

export interface KeyRotationSettings {
  /** A new key is published this long before it signs (every instance and JWKS cache sees it first). */
  publishAheadMs: number;
  /** The replaced key keeps verifying this long after the new one activates: the longest access-token life. */
  retireAfterMs: number;
  /** With a schedule, load() rotates when the newest key is this old; 0 = by command only. */
  rotationIntervalMs: number;
}

/** A key's public half and its schedule: all that verifying needs, and all the gRPC thread is given. */
export type PublishedKey = Pick<StoredSigningKey, "kid" | "alg" | "publicJwk" | "activatesAt" | "retiresAt">;

const publishedKey = ({ kid, alg, publicJwk, activatesAt, retiresAt }: PublishedKey): PublishedKey => ({
  kid,
  alg,
  publicJwk,
  activatesAt,
  retiresAt,
});

/** What is true of the keys at one instant; recomputed when the instant passes a key's activation or retirement. */
interface KeyView {
  /** The newest key whose activation has passed: the one that signs. */
  active: PublishedKey;
  verification: Map<string, KeyObject>;
  jwks: { keys: PublicJwk[] };
  /** The next activation or retirement: the view holds until then. */
  validUntil: number;
}

/**
 * Which keys verify and which signs, as a function of the keys and the time: the newest key whose
 * activation has passed signs; every key not yet retired verifies and is in JWKS, including one
 * published ahead of its activation. The key ring builds on it; the gRPC thread runs one of its
 * own on the public halves it is sent.
 */
export function createKeySchedule(clock: Clock) {
  let keys: PublishedKey[] = [];
  let view: KeyView | null = null;
  const publicKeys = new Map<string, KeyObject>();

  function publicKeyOf(key: PublishedKey): KeyObject {
    let object = publicKeys.get(key.kid);
    if (!object) {
      object = createPublicKey({ key: { ...key.publicJwk }, format: "jwk" });
      publicKeys.set(key.kid, object);
    }
    return object;
  }

  function viewAt(now: number): KeyView {
    if (view && now < view.validUntil) return view;
    const live = keys.filter((k) => k.retiresAt === null || k.retiresAt.getTime() > now);
    const active = live.filter((k) => k.activatesAt.getTime() <= now).at(-1);
    if (!active) throw new Error("no signing key is active");
    const boundaries = live
      .flatMap((k) => [k.activatesAt.getTime(), k.retiresAt?.getTime() ?? Number.POSITIVE_INFINITY])
      .filter((t) => t > now);
    view = {
      active,
      verification: new Map(live.map((k) => [k.kid, publicKeyOf(k)] as const)),
      jwks: { keys: live.map((k) => ({ ...k.publicJwk, kid: k.kid, alg: k.alg, use: "sig" as const })) },
      validUntil: Math.min(...boundaries),
    };
    return view;
  }

  return {
    /** Takes the current keys; fails at once if none of them can sign now. */
    accept(next: readonly PublishedKey[]): void {
      keys = [...next].sort((a, b) => a.activatesAt.getTime() - b.activatesAt.getTime());
      view = null;
      viewAt(clock.now());
    },
    activeKey: (): PublishedKey => viewAt(clock.now()).active,
    verificationKeys: (): ReadonlyMap<string, KeyObject> => viewAt(clock.now()).verification,
    jwks: () => viewAt(clock.now()).jwks,
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

/** Tells every instance to reload the keys (after a rotation). */
export const SIGNING_KEYS_TOPIC = "signing-keys";
export const KEY_RELOAD_INTERVAL_MS = 60_000;

/**
 * Keeps an instance's key ring current: reloads every minute (which is also when a scheduled
 * rotation happens), at once when another instance or the rotation command announces a new key,
 * and after a broadcast gap. Returns the function that stops it.
 */
export async function keepKeyRingFresh(deps: {
  keyRing: KeyRing;
  broadcast: Broadcast;
  log: Logger;
}): Promise<() => void> {
  async function reloadNow(why: string) {
    let rotated: boolean;
    try {
      rotated = await deps.keyRing.load();
    } catch (err) {
      deps.log.warn("signing keys could not be reloaded; keeping the ones loaded", {
        why,
        error: errorSummary(err),
      });
      return;
    }
    if (!rotated) return;
    const next = deps.keyRing.keys().at(-1);
    deps.log.info("rotated the signing key on schedule", {
      kid: next?.kid,
      activatesAt: next?.activatesAt.toISOString(),
    });
    // The others would see it at their next reload anyway, well before it signs.
    await deps.broadcast.publish(SIGNING_KEYS_TOPIC, "rotated").catch((err: Error) =>
      deps.log.warn("a new signing key could not be announced; instances load it within a minute", {
        error: errorSummary(err),
      }),
    );
  }
  const reload = (why: string) => () => void reloadNow(why);
  await deps.broadcast.subscribe(
    SIGNING_KEYS_TOPIC,
    reload("a new key was announced"),
    reload("broadcast gap"),
  );
  const timer = setInterval(reload("periodic reload"), KEY_RELOAD_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
