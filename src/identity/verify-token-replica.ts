import type { Clock } from "../domain/ports.js";
import type { TokenSettings } from "../domain/tokens.js";
import { createRevocationMirror, type RevocationEntry } from "../revocation/revocation-mirror.js";
import { REVOCATION_RESYNC_INTERVAL_MS, type Revocations } from "../revocation/revocations.js";
import type { KeyRing } from "../signing-keys/key-ring.js";
import { createKeySchedule, type PublishedKey } from "../signing-keys/key-schedule.js";
import { createWatchers } from "../util/watchers.js";
import { createVerifyToken, type VerifyToken } from "./verify-token.js";

/**
 * A copy of what VerifyToken reads, for a thread that answers VerifyToken on its own (the gRPC
 * thread): the public halves of the signing keys and the ended sessions. The main thread feeds it
 * updates; nothing else crosses.
 */
export type ReplicaUpdate = { keys: readonly PublishedKey[] } | { revoked: readonly RevocationEntry[] };

/** The main thread's side: the state as updates, and every change from now on. */
export interface ReplicaFeed {
  /** The updates that bring an empty replica to the current state. */
  snapshot(): ReplicaUpdate[];
  /** Calls `send` with every update from now on; returns the function that stops it. */
  watch(send: (update: ReplicaUpdate) => void): () => void;
}

export function createReplicaFeed(
  keyRing: Pick<KeyRing, "publishedKeys" | "watch">,
  revocations: Pick<Revocations, "entries" | "watch">,
): ReplicaFeed {
  return {
    snapshot: () => [{ keys: keyRing.publishedKeys() }, { revoked: revocations.entries() }],
    watch(send) {
      const stops = [
        keyRing.watch((keys) => send({ keys })),
        revocations.watch((revoked) => send({ revoked })),
      ];
      return () => {
        for (const stop of stops) stop();
      };
    },
  };
}

/** The replica's side: a VerifyToken of its own over the keys and revocations it is fed. */
export function createVerifyTokenReplica(deps: {
  clock: Clock;
  settings: TokenSettings;
  cacheBytes: number;
}) {
  const keys = createKeySchedule(deps.clock);
  const revocations = createRevocationMirror(deps.clock);
  setInterval(() => revocations.forgetExpired(), REVOCATION_RESYNC_INTERVAL_MS).unref();
  const verifyToken: VerifyToken = createVerifyToken({ keyRing: keys, revocations, ...deps });
  let published: readonly PublishedKey[] = [];
  const watchers = createWatchers<ReplicaUpdate>();
  return {
    verifyToken,
    /** Throws when the keys it is given include none that can sign now. */
    apply(update: ReplicaUpdate): void {
      if ("keys" in update) {
        keys.accept(update.keys);
        published = update.keys;
        watchers.notify(update);
      } else {
        const added = revocations.add(update.revoked);
        if (added.length > 0) watchers.notify({ revoked: added });
      }
    },
    /** The replica's state and its changes, as the main thread's feed gives them (WatchRevocations). */
    feed: {
      snapshot: () => [{ keys: published }, { revoked: revocations.entries() }],
      watch: watchers.watch,
    } satisfies ReplicaFeed,
  };
}
