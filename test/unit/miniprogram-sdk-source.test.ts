import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";

/**
 * The SDK is taken into mini-programs as one file, so it may import nothing. (That it uses no
 * Node or DOM API is checked by `npm run lint`: src/miniprogram/tsconfig.json has neither.)
 */
describe("mini-program SDK source", () => {
  it("imports nothing and requires nothing", async () => {
    const source = await readFile(new URL("../../src/miniprogram/auth.ts", import.meta.url), "utf8");
    expect(source).not.toMatch(/^\s*import\s|\bfrom\s+["']|\brequire\s*\(|\bimport\s*\(/m);
  });
});
