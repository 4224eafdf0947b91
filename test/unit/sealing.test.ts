import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createSealer } from "../../src/domain/sealing.js";

describe("sealing", () => {
  const kek = randomBytes(32);

  it("round-trips and never shows the plaintext", () => {
    const sealer = createSealer(kek, "session-key");
    const sealed = sealer.seal("o0q0otL8aEzpcZL/FT9WsQ==");
    expect(sealed).not.toContain("o0q0otL8");
    expect(sealer.open(sealed)).toBe("o0q0otL8aEzpcZL/FT9WsQ==");
    expect(sealer.seal("x")).not.toBe(sealer.seal("x"));
  });

  it("refuses a value sealed for another purpose or key, or tampered with", () => {
    const sealed = createSealer(kek, "session-key").seal("secret");
    expect(() => createSealer(kek, "signing-key").open(sealed)).toThrow();
    expect(() => createSealer(randomBytes(32), "session-key").open(sealed)).toThrow();
    const raw = Buffer.from(sealed, "base64url");
    raw[raw.length - 1] = (raw[raw.length - 1] as number) ^ 1;
    expect(() => createSealer(kek, "session-key").open(raw.toString("base64url"))).toThrow();
  });
});
