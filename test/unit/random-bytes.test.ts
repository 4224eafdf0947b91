import { describe, expect, it } from "vitest";
import { secureRandomBytes } from "../../src/util/random-bytes.js";

describe("secureRandomBytes", () => {
  it("hands out each value once, of the size asked, across many pool refills", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const size = 1 + (i % 40); // sizes that straddle the 4 KiB pool's end at varying offsets
      const bytes = secureRandomBytes(size);
      expect(bytes.length).toBe(size);
      if (size >= 12) seen.add(bytes.toString("hex"));
    }
    expect(seen.size).toBe([...Array(5000).keys()].filter((i) => 1 + (i % 40) >= 12).length);
  });

  it("returns a copy the caller owns, not a view of the pool (which is wiped and refilled)", () => {
    const a = secureRandomBytes(32);
    const before = a.toString("hex");
    expect(before).not.toBe("00".repeat(32));
    for (let i = 0; i < 300; i++) secureRandomBytes(32); // more than two refills of the pool
    expect(a.toString("hex")).toBe(before);
  });

  it("serves large requests directly, and the bytes look random", () => {
    const big = secureRandomBytes(10_000);
    expect(big.length).toBe(10_000);
    const ones = [...big].reduce((n, byte) => n + byte.toString(2).replaceAll("0", "").length, 0);
    expect(ones / 80_000).toBeGreaterThan(0.48);
    expect(ones / 80_000).toBeLessThan(0.52);
  });
});
