import { describe, expect, it } from "vitest";
import { LruCache, TokenCache } from "../../src/util/lru-cache.js";

describe("LruCache", () => {
  it("evicts the least recently used entry past capacity", () => {
    const cache = new LruCache<string, number>(2);
    cache.set("a", 1);
    cache.set("b", 2);
    expect(cache.get("a")).toBe(1); // a is now the most recent
    cache.set("c", 3);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toBe(1);
    expect(cache.get("c")).toBe(3);
    expect(cache.size).toBe(2);
  });

  it("never evicts an entry used at least once per half-capacity of inserts", () => {
    const cache = new LruCache<string, number>(100);
    cache.set("hot", 0);
    for (let i = 0; i < 10_000; i++) {
      cache.set(`cold-${i}`, i);
      if (i % 50 === 49) expect(cache.get("hot"), `after ${i + 1} inserts`).toBe(0);
    }
    expect(cache.size).toBe(100);
    expect(cache.get("cold-9899")).toBeUndefined(); // the cold ones come and go in order
    expect(cache.get("cold-9999")).toBe(9999);
  });

  it("evicts an entry that went unused for a full capacity of inserts", () => {
    const cache = new LruCache<string, number>(10);
    cache.set("idle", 1);
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, i);
    expect(cache.get("idle")).toBeUndefined();
  });
});

describe("TokenCache", () => {
  it("finds a token by its whole text; another token with the same signature tail misses", () => {
    const cache = new TokenCache<string>(10);
    const tail = "S".repeat(86);
    const genuine = `header.payload.${tail}`;
    cache.set(genuine, "claims");
    expect(cache.get(`header.payload.${tail}`)).toBe("claims");
    expect(cache.get(`header.forged-payload.${tail}`)).toBeUndefined();
    expect(cache.get("short")).toBeUndefined();
  });
});
