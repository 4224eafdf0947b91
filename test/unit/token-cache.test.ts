import { describe, expect, it } from "vitest";
import { TokenCache } from "../../src/util/token-cache.js";

const entryBytes = 1000;
const cacheOf = (entries: number) =>
  new TokenCache<{ n: number }>({ maxBytes: entries * entryBytes, bytesOf: () => entryBytes });

describe("TokenCache", () => {
  it("finds a token by its whole text; another token with the same signature misses", () => {
    const cache = cacheOf(10);
    const signature = "S".repeat(86);
    cache.set(`header.payload.${signature}`, { n: 1 });
    expect(cache.get(`header.payload.${signature}`)).toEqual({ n: 1 });
    expect(cache.get(`header.forged-payload.${signature}`)).toBeUndefined();
    expect(cache.get("short")).toBeUndefined();
  });

  it("holds no more bytes than it is given, evicting the least recently used", () => {
    const cache = cacheOf(100);
    cache.set("hot", { n: -1 });
    for (let i = 0; i < 10_000; i++) {
      cache.set(`token-${i}`, { n: i });
      if (i % 50 === 49) expect(cache.get("hot"), `after ${i + 1} inserts`).toEqual({ n: -1 });
      expect(cache.bytes).toBeLessThanOrEqual(100 * entryBytes);
    }
    expect(cache.size).toBe(100);
    expect(cache.get("token-9000")).toBeUndefined();
    expect(cache.get("token-9999")).toEqual({ n: 9999 });
  });

  it("weighs each entry by its own size", () => {
    const cache = new TokenCache<{ text: string }>({ maxBytes: 10_000, bytesOf: (v) => v.text.length });
    for (let i = 0; i < 100; i++) cache.set(`small-${i}`, { text: "x".repeat(100) });
    expect(cache.size).toBe(100);
    cache.set("large", { text: "x".repeat(5_000) });
    expect(cache.bytes).toBeLessThanOrEqual(10_000);
    expect(cache.size).toBe(51); // half the small ones made room
    expect(cache.get("large")).toBeDefined();
  });
});
