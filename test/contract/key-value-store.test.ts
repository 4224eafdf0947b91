import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeyValueStore } from "../../src/domain/ports.js";
import { guardPort } from "../../src/store/guard-port.js";
import { createMemoryKeyValueStore } from "../../src/store/memory/key-value-store.js";
import { connectRedis } from "../../src/store/redis/connection.js";
import { createRedisKeyValueStore } from "../../src/store/redis/key-value-store.js";
import { REAL_REDIS_URL, redisTopologies } from "../helpers/backends.js";
import { uniqueName } from "../helpers/scratch-database.js";

/** One contract, every implementation: the in-process store and Redis. */
function keyValueContract(name: string, open: () => Promise<{ kv: KeyValueStore; close(): Promise<void> }>) {
  describe(`KeyValueStore: ${name}`, () => {
    let kv: KeyValueStore;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ kv, close } = await open());
    });
    afterAll(() => close());

    it("stores, reads and deletes", async () => {
      expect(await kv.get("a")).toBeNull();
      await kv.set("a", "1", 10_000);
      expect(await kv.get("a")).toBe("1");
      await kv.set("a", "2", 10_000);
      expect(await kv.get("a")).toBe("2");
      await kv.delete("a");
      expect(await kv.get("a")).toBeNull();
      await kv.delete("never-there");
    });

    it("forgets values after their time to live", async () => {
      // Long enough that a busy machine still reads the value before it expires.
      await kv.set("short", "x", 500);
      expect(await kv.get("short")).toBe("x");
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(await kv.get("short")).toBeNull();
    });

    it("setIfAbsent lets exactly one of many concurrent callers win", async () => {
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => kv.setIfAbsent("race", `v${i}`, 10_000)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect(await kv.get("race")).toBe(`v${winner}`);
    });

    it("swap sets and returns the value it replaced, atomically", async () => {
      expect(await kv.swap("swapped", "a", 10_000)).toBeNull();
      expect(await kv.swap("swapped", "b", 10_000)).toBe("a");
      expect(await kv.get("swapped")).toBe("b");
      // Of concurrent swaps each sees a different predecessor: none is lost.
      const replaced = await Promise.all(
        Array.from({ length: 20 }, (_, i) => kv.swap("swapped", `v${i}`, 10_000)),
      );
      const last = await kv.get("swapped");
      expect(new Set([...replaced, last]).size).toBe(21);
      expect(replaced).toContain("b");
    });

    it("setIfAbsent succeeds again once the value expired", async () => {
      expect(await kv.setIfAbsent("lease", "a", 500)).toBe(true);
      expect(await kv.setIfAbsent("lease", "b", 500)).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(await kv.setIfAbsent("lease", "c", 500)).toBe(true);
    });

    it("keeps values byte-exact (unicode, JSON)", async () => {
      const value = JSON.stringify({ k: "会话密钥 🔑", n: 1 });
      await kv.set("json", value, 10_000);
      expect(await kv.get("json")).toBe(value);
    });
  });
}

keyValueContract("in-process", async () => ({ kv: createMemoryKeyValueStore(), close: async () => {} }));

for (const { name, topology } of redisTopologies()) {
  keyValueContract(name, async () => {
    const redis = connectRedis(topology);
    await redis.connect();
    return {
      kv: createRedisKeyValueStore(redis, `${uniqueName("kvtest")}:`),
      close: async () => void (await redis.quit()),
    };
  });
}

if (REAL_REDIS_URL) {
  describe("KeyValueStore: redis outage", () => {
    it("fails fast with STORAGE_UNAVAILABLE, not an auth error or INTERNAL", async () => {
      const redis = connectRedis({ kind: "node", url: "redis://127.0.0.1:1" });
      const kv = guardPort(createRedisKeyValueStore(redis, "x:"), "redis");
      await expect(kv.get("a")).rejects.toMatchObject({ reason: "STORAGE_UNAVAILABLE" });
      redis.disconnect();
    });
  });
} else {
  describe.skip("KeyValueStore: redis (set REDIS_URL to run)", () => {
    it("runs the contract against Redis", () => {});
  });
}
