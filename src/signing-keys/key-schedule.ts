import { createPublicKey, type KeyObject } from "node:crypto";
import type { Clock, StoredSigningKey } from "../domain/ports.js";

/** A published verification key: the stored public JWK plus kid, alg and use. */
export type PublicJwk = Record<string, string> & { kid: string; alg: string; use: "sig" };

/** A key's public half and its schedule: all that verifying needs, and all the gRPC thread is given. */
export type PublishedKey = Pick<StoredSigningKey, "kid" | "alg" | "publicJwk" | "activatesAt" | "retiresAt">;

export const publishedKey = ({
  kid,
  alg,
  publicJwk,
  activatesAt,
  retiresAt,
}: PublishedKey): PublishedKey => ({
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

export type KeySchedule = ReturnType<typeof createKeySchedule>;
