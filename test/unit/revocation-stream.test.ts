import { describe, expect, it } from "vitest";
import type { ReplicaFeed, ReplicaUpdate } from "../../src/identity/verify-token-replica.js";
import type { RevocationEntry } from "../../src/revocation/revocation-mirror.js";
import { createRevocationStream, type RevocationMessage } from "../../src/revocation/revocation-stream.js";
import { createWatchers } from "../../src/util/watchers.js";

/** A feed as the key ring and the revocations give one: a state, and its changes. */
function feedOf(revoked: RevocationEntry[]) {
  const watchers = createWatchers<ReplicaUpdate>();
  const feed: ReplicaFeed = { snapshot: () => [{ keys: [] }, { revoked }], watch: watchers.watch };
  return {
    feed,
    revoke(id: string) {
      const entry: RevocationEntry = [id, Date.now() + 60_000];
      revoked.push(entry);
      watchers.notify({ revoked: [entry] });
    },
  };
}

async function take(stream: AsyncGenerator<RevocationMessage>, n: number): Promise<RevocationMessage[]> {
  const got: RevocationMessage[] = [];
  while (got.length < n) {
    const next = await stream.next();
    if (next.done) break;
    got.push(next.value);
  }
  return got;
}

describe("the revocation stream", () => {
  it("splits a large snapshot into parts, the first resetting and the last completing it", async () => {
    const source = feedOf(
      Array.from({ length: 25 }, (_, i): RevocationEntry => [`s${i}`, Date.now() + 60_000]),
    );
    const stream = createRevocationStream(source.feed, { snapshotChunk: 10 });
    const parts = await take(stream.watch("", new AbortController().signal), 3);
    expect(parts.map((p) => [p.reset, p.snapshotComplete, p.revoked.length])).toEqual([
      [true, false, 10],
      [false, false, 10],
      [false, true, 5],
    ]);
    stream.close();
  });

  it("drops a subscriber that falls more than maxQueued messages behind, and only that one", async () => {
    const source = feedOf([]);
    const stream = createRevocationStream(source.feed, { maxQueued: 5 });
    const slow = stream.watch("", new AbortController().signal);
    const fast = stream.watch("", new AbortController().signal);
    await take(slow, 1);
    await take(fast, 1);
    for (let i = 0; i < 8; i++) {
      source.revoke(`x${i}`);
      await take(fast, 1);
    }
    // Dropped as soon as a sixth would be queued, before it reads again: nothing more is kept
    // for it, and it is told when it next reads.
    expect(stream.subscribers).toBe(1);
    await expect(take(slow, 10)).rejects.toMatchObject({ reason: "SUBSCRIBER_TOO_SLOW" });
    source.revoke("after");
    expect((await take(fast, 1))[0]?.revoked[0]?.[0]).toBe("after");
    stream.close();
  });

  it("resumes within its backlog, and gives a snapshot for a position older than it", async () => {
    const source = feedOf([]);
    const stream = createRevocationStream(source.feed, { backlog: 3 });
    const [snapshot] = await take(stream.watch("", new AbortController().signal), 1);
    const start = snapshot?.position as string;
    source.revoke("a");
    source.revoke("b");
    const resumed = await take(stream.watch(start, new AbortController().signal), 3);
    expect(resumed.map((m) => [m.reset, m.revoked[0]?.[0]])).toEqual([
      [false, "a"],
      [false, "b"],
      [false, undefined],
    ]);
    expect(resumed[2]?.position).toBe(resumed[1]?.position);
    source.revoke("c");
    source.revoke("d");
    // "a" has left the backlog of 3: from `start`, something would be missed.
    const [again] = await take(stream.watch(start, new AbortController().signal), 1);
    expect(again?.reset).toBe(true);
    stream.close();
  });
});
