import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import type { RedisTopology } from "../../src/config.js";
import type { Broadcast } from "../../src/domain/ports.js";
import { createMemoryBroadcast } from "../../src/store/memory/broadcast.js";
import { createRedisBroadcast } from "../../src/store/redis/broadcast.js";
import { connectRedis, type RedisClient } from "../../src/store/redis/connection.js";
import { REAL_REDIS_URL, redisTopologies } from "../helpers/backends.js";
import { eventually } from "../helpers/eventually.js";
import { uniqueName } from "../helpers/scratch-database.js";

/** Two instances of one deployment: what one publishes, the other (and itself) receives. */
function broadcastContract(
  name: string,
  open: () => Promise<{ a: Broadcast; b: Broadcast; close(): Promise<void> }>,
) {
  describe(`Broadcast: ${name}`, () => {
    it("delivers a topic's messages, in order, to every subscriber of that topic only", async () => {
      const { a, b, close } = await open();
      try {
        const onB: string[] = [];
        const onA: string[] = [];
        const otherTopic: string[] = [];
        await b.subscribe(
          "revocations",
          (m) => onB.push(m),
          () => {},
        );
        await a.subscribe(
          "revocations",
          (m) => onA.push(m),
          () => {},
        );
        await b.subscribe(
          "signing-keys",
          (m) => otherTopic.push(m),
          () => {},
        );
        for (const m of ["one", "two", "three"]) await a.publish("revocations", m);
        await eventually(() => onB.length === 3 && onA.length === 3, "three messages on each side");
        expect(onB).toEqual(["one", "two", "three"]);
        expect(onA).toEqual(["one", "two", "three"]);
        expect(otherTopic).toEqual([]);
      } finally {
        await close();
      }
    });
  });
}

broadcastContract("in-process (embedded)", async () => {
  const local = createMemoryBroadcast();
  return { a: local, b: local, close: () => local.close() };
});

const opened: RedisClient[] = [];
afterAll(() => {
  for (const r of opened) r.disconnect();
});
const redisBroadcast = (topology: RedisTopology, prefix: string) => {
  const publisher = connectRedis(topology);
  opened.push(publisher);
  return createRedisBroadcast(publisher, { topology, prefix });
};

// Pub/sub on one node, across a Cluster's masters (a PUBLISH reaches every node), and through
// the master a Sentinel set names.
for (const { name, topology } of redisTopologies()) {
  broadcastContract(`${name} pub/sub`, async () => {
    const prefix = `${uniqueName("bc")}:`;
    const a = redisBroadcast(topology, prefix);
    const b = redisBroadcast(topology, prefix);
    return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
  });
}

if (REAL_REDIS_URL) {
  const url = REAL_REDIS_URL;
  const topology: RedisTopology = { kind: "node", url };

  describe("Broadcast: Redis specifics", () => {
    it("keeps deployments with different prefixes apart", async () => {
      const a = redisBroadcast(topology, `${uniqueName("bc")}:`);
      const b = redisBroadcast(topology, `${uniqueName("bc")}:`);
      const got: string[] = [];
      await b.subscribe(
        "revocations",
        (m) => got.push(m),
        () => {},
      );
      await b.publish("revocations", "own");
      await a.publish("revocations", "foreign");
      await eventually(() => got.length > 0, "b's own message");
      await new Promise((r) => setTimeout(r, 50));
      expect(got).toEqual(["own"]);
      await Promise.all([a.close(), b.close()]);
    });

    it("reports a gap once it is subscribed again after its connection was killed, and delivers after", async () => {
      const prefix = `${uniqueName("bc")}:`;
      const a = redisBroadcast(topology, prefix);
      const b = redisBroadcast(topology, prefix);
      const got: string[] = [];
      let gaps = 0;
      await b.subscribe(
        "revocations",
        (m) => got.push(m),
        () => gaps++,
      );
      expect(gaps).toBe(0);

      const admin = new Redis(url);
      const clients = (await admin.client("LIST")) as string;
      const id = clients
        .split("\n")
        .find((line) => line.includes(`name=${prefix}broadcast`))
        ?.match(/\bid=(\d+)/)?.[1];
      expect(id).toBeDefined();
      await admin.client("KILL", "ID", id as string);
      admin.disconnect();

      await eventually(() => gaps === 1, "the gap report");
      await a.publish("revocations", "after the gap");
      await eventually(() => got.includes("after the gap"), "a message after the gap");
      await Promise.all([a.close(), b.close()]);
    });
  });
} else {
  describe.skip("Broadcast: Redis pub/sub (set REDIS_URL to run)", () => {
    it("runs the contract against Redis", () => {});
  });
}
