import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUseCaseWorld, type UseCaseWorld } from "../helpers/use-case-world.js";

describe("VerifyToken (use case, in-memory stores)", () => {
  let w: UseCaseWorld;
  beforeAll(async () => {
    w = await createUseCaseWorld({ ACCESS_TOKEN_TTL: "15m", TOKEN_LEEWAY: "5" });
  });
  afterAll(() => w.close());

  const refusal = (token: string) => {
    try {
      w.useCases.verifyToken.verify(token);
    } catch (err) {
      return (err as { reason?: string; metadata?: Record<string, string> }).reason;
    }
    return "accepted";
  };

  it("accepts a token it issued, from the cache too, with the same claims", async () => {
    const { tokens, user } = await w.login();
    const first = w.useCases.verifyToken.verify(tokens.accessToken);
    expect(first).toMatchObject({ userId: user.id, sessionId: tokens.accessClaims.sessionId, roles: [] });
    expect(w.useCases.verifyToken.verify(tokens.accessToken)).toEqual(first);
  });

  it("checks expiry on every call, cached or not, with the configured leeway", async () => {
    const { tokens } = await w.login();
    w.useCases.verifyToken.verify(tokens.accessToken); // now cached
    w.clock.advance(w.config.tokens.accessTokenTtlMs + w.config.tokens.leewayMs - 2000);
    expect(refusal(tokens.accessToken)).toBe("accepted");
    w.clock.advance(3000);
    expect(refusal(tokens.accessToken)).toBe("TOKEN_EXPIRED");
  });

  it("refuses a forged signature, another token's tail, and an empty token", async () => {
    const a = (await w.login()).tokens.accessToken;
    const b = (await w.login()).tokens.accessToken;
    w.useCases.verifyToken.verify(a);
    const [header, payload] = b.split(".");
    const signatureOfA = a.split(".")[2];
    expect(refusal(`${header}.${payload}.${signatureOfA}`)).toBe("TOKEN_INVALID");
    expect(refusal(`${a.slice(0, -4)}AAAA`)).toBe("TOKEN_INVALID");
    expect(refusal("")).toBe("INVALID_ARGUMENT");
  });
});

describe("the cache of verified tokens", () => {
  let w: UseCaseWorld;
  beforeAll(async () => {
    w = await createUseCaseWorld({ VERIFY_CACHE_BYTES: "64KiB" });
  });
  afterAll(() => w.close());

  it("stays within VERIFY_CACHE_BYTES, each entry counted with the answer kept beside it, and still answers evicted tokens", async () => {
    const tokens: string[] = [];
    for (let i = 0; i < 300; i++) tokens.push((await w.login()).tokens.accessToken);
    for (const token of tokens) w.useCases.verifyToken.verify(token);
    const { size, bytes } = w.useCases.verifyToken.cacheStats();
    expect(bytes).toBeLessThanOrEqual(64 * 1024);
    expect(size).toBeGreaterThan(40); // ~1.2 KB an entry, claims ~550 and the kept answer ~670
    expect(size).toBeLessThan(60);
    expect(bytes / size).toBeGreaterThan(1100);
    expect(bytes / size).toBeLessThan(1500);
    // The first tokens were evicted: verified again in full, not refused.
    expect(w.useCases.verifyToken.verify(tokens[0] as string).userId).toBeTruthy();
  });
});

describe("one app's token is no other's", () => {
  let w: UseCaseWorld;
  beforeAll(async () => {
    w = await createUseCaseWorld();
  });
  afterAll(() => w.close());

  it("carries its own app as the audience, and VerifyToken with an expected app refuses another's", async () => {
    const { tokens, user } = await w.login();
    const payload = JSON.parse(
      Buffer.from(tokens.accessToken.split(".")[1] as string, "base64url").toString(),
    );
    expect(payload.aud).toBe(user.appId);
    expect(w.useCases.verifyToken.verify(tokens.accessToken, user.appId).userId).toBe(user.id);
    expect(() => w.useCases.verifyToken.verify(tokens.accessToken, "wxtestapp0000002")).toThrow(
      expect.objectContaining({ reason: "TOKEN_APP_MISMATCH" }),
    );
    // The same again from the cache.
    expect(() => w.useCases.verifyToken.verify(tokens.accessToken, "wxtestapp0000002")).toThrow(
      expect.objectContaining({ reason: "TOKEN_APP_MISMATCH" }),
    );
  });
});
