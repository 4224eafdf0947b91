import { randomBytes } from "node:crypto";
import { IdentityError } from "../domain/errors.js";
import type { ReplicaFeed, ReplicaUpdate } from "../identity/verify-token-replica.js";
import type { PublishedKey } from "../signing-keys/key-schedule.js";
import type { RevocationEntry } from "./revocation-mirror.js";

/** One message of WatchRevocations, before the wire. */
export interface RevocationMessage {
  position: string;
  reset: boolean;
  snapshotComplete: boolean;
  revoked: readonly RevocationEntry[];
  /** The whole current set, when it changed; undefined: unchanged. */
  keys: readonly PublishedKey[] | undefined;
}

export interface RevocationStreamOptions {
  /** Changes kept for subscribers that resume (`after`); older positions get a snapshot. */
  backlog?: number;
  /** Messages a subscriber may fall behind before it is dropped (SUBSCRIBER_TOO_SLOW). */
  maxQueued?: number;
  /** Revoked sessions per snapshot message. */
  snapshotChunk?: number;
}

interface Subscriber {
  queue: RevocationMessage[];
  overflowed: boolean;
  ended: boolean;
  wake: (() => void) | undefined;
}

/**
 * WatchRevocations on one instance (the main thread for the HTTP port, the gRPC thread for its
 * own): what the feed holds as a snapshot, then every update the feed hears, numbered. Positions
 * are `<epoch>.<seq>`: the epoch is this stream's (a new process, or another instance, cannot
 * resume a position it never gave), the seq counts updates. A subscriber is a bounded queue that
 * the transport drains as fast as the caller reads: one that falls `maxQueued` messages behind
 * is dropped, so a slow reader never holds more than that of the server's memory.
 */
export function createRevocationStream(feed: ReplicaFeed, options: RevocationStreamOptions = {}) {
  const backlogSize = options.backlog ?? 10_000;
  const maxQueued = options.maxQueued ?? 1_000;
  const chunk = options.snapshotChunk ?? 5_000;
  const epoch = randomBytes(6).toString("base64url");
  let seq = 0;
  const backlog: Array<{ seq: number; message: RevocationMessage }> = [];
  const subscribers = new Set<Subscriber>();

  const unwatch = feed.watch((update) => {
    seq++;
    // One message object for every subscriber: the transport maps and encodes it once
    // (bench:watch-subscribers).
    const next = message(seq, update);
    backlog.push({ seq, message: next });
    if (backlog.length > backlogSize) backlog.splice(0, backlog.length - backlogSize);
    for (const s of subscribers) {
      if (s.queue.length >= maxQueued) {
        // Dropped now, not when it next reads: a caller that stopped reading holds nothing more
        // than what is already in its connection's buffers.
        s.overflowed = true;
        s.queue.length = 0;
        subscribers.delete(s);
      } else s.queue.push(next);
      s.wake?.();
    }
  });

  const position = (at: number) => `${epoch}.${at}`;
  const message = (at: number, update: ReplicaUpdate): RevocationMessage => ({
    position: position(at),
    reset: false,
    snapshotComplete: false,
    revoked: "revoked" in update ? update.revoked : [],
    keys: "keys" in update ? update.keys : undefined,
  });

  /**
   * What a subscriber has missed while it was writing, as one message: under a burst of
   * revocations it gets a write per turn, not one per revocation.
   */
  function merged(queued: RevocationMessage[]): RevocationMessage {
    if (queued.length === 1) return queued[0] as RevocationMessage;
    return {
      position: (queued.at(-1) as RevocationMessage).position,
      reset: false,
      snapshotComplete: false,
      revoked: queued.flatMap((m) => m.revoked),
      keys: queued.findLast((m) => m.keys !== undefined)?.keys,
    };
  }

  /** The seq `after` names on this stream, if its updates since are all still in the backlog. */
  function resumable(after: string): number | undefined {
    const [givenEpoch, givenSeq] = after.split(".");
    const at = Number(givenSeq);
    if (givenEpoch !== epoch || !Number.isSafeInteger(at) || at > seq) return undefined;
    const oldest = backlog[0]?.seq ?? seq + 1;
    return at >= oldest - 1 ? at : undefined;
  }

  /**
   * The last snapshot made: subscribers that come within a second while nothing changed (a
   * reconnect storm) share it and its encoding. Older, it is made anew, without the sessions
   * whose tokens have expired since.
   */
  let lastSnapshot: { at: number; madeAt: number; parts: RevocationMessage[] } | undefined;

  function snapshot(at: number): RevocationMessage[] {
    const now = performance.now();
    if (lastSnapshot?.at === at && now - lastSnapshot.madeAt < 1000) return lastSnapshot.parts;
    let keys: readonly PublishedKey[] = [];
    const revoked: RevocationEntry[] = [];
    for (const update of feed.snapshot()) {
      if ("keys" in update) keys = update.keys;
      else revoked.push(...update.revoked);
    }
    const parts: RevocationMessage[] = [];
    for (let i = 0; i === 0 || i < revoked.length; i += chunk) {
      parts.push({
        position: position(at),
        reset: i === 0,
        snapshotComplete: false,
        revoked: revoked.slice(i, i + chunk),
        keys: i === 0 ? keys : undefined,
      });
    }
    (parts.at(-1) as RevocationMessage).snapshotComplete = true;
    lastSnapshot = { at, madeAt: now, parts };
    return parts;
  }

  return {
    /**
     * The subscriber's messages until `signal` aborts (the caller went away) or the stream is
     * closed; throws SUBSCRIBER_TOO_SLOW when it fell too far behind, SHUTTING_DOWN on close.
     */
    async *watch(after: string, signal: AbortSignal): AsyncGenerator<RevocationMessage> {
      const subscriber: Subscriber = { queue: [], overflowed: false, ended: false, wake: undefined };
      // Registered and read in one tick: nothing falls between the start and the queue.
      subscribers.add(subscriber);
      const start = seq;
      const from = after === "" ? undefined : resumable(after);
      // A resume sends what was missed, then an empty message: caught up. The subscriber trusts
      // its mirror again only then, so no token revoked while it was away is accepted before
      // that revocation has arrived.
      const caughtUp: RevocationMessage = {
        position: position(start),
        reset: false,
        snapshotComplete: false,
        revoked: [],
        keys: undefined,
      };
      const first =
        from === undefined
          ? snapshot(start)
          : [...backlog.filter((e) => e.seq > from && e.seq <= start).map((e) => e.message), caughtUp];
      const onAbort = () => subscriber.wake?.();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        yield* first;
        while (!signal.aborted) {
          if (subscriber.ended) {
            throw new IdentityError(
              "SHUTTING_DOWN",
              "this instance is stopping: reconnect with `after` to resume",
            );
          }
          if (subscriber.overflowed) {
            throw new IdentityError(
              "SUBSCRIBER_TOO_SLOW",
              `fell more than ${maxQueued} messages behind: reconnect (without \`after\`) for a snapshot`,
            );
          }
          if (subscriber.queue.length > 0) {
            yield merged(subscriber.queue.splice(0));
            continue;
          }
          await new Promise<void>((resolve) => {
            subscriber.wake = resolve;
          });
          subscriber.wake = undefined;
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
        subscribers.delete(subscriber);
      }
    },

    get subscribers() {
      return subscribers.size;
    },

    /** Ends every subscription (SHUTTING_DOWN) and stops listening to the feed. */
    close(): void {
      unwatch();
      for (const s of subscribers) {
        s.ended = true;
        s.wake?.();
      }
    },
  };
}

export type RevocationStream = ReturnType<typeof createRevocationStream>;
