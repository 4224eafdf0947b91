import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VerifyTokenRequestSchema } from "../../src/gen/identity/v1/identity_pb.js";
import { verifyCacheShares } from "../../src/identity/verify-token.js";
import { KEPT_RESPONSE_BYTES, verifyTokenRpc } from "../../src/transport/identity-service/verify-token.js";
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

  it("keeps the claims within their share of VERIFY_CACHE_BYTES, and still answers evicted tokens", async () => {
    const tokens: string[] = [];
    for (let i = 0; i < 300; i++) tokens.push((await w.login()).tokens.accessToken);
    for (const token of tokens) w.useCases.verifyToken.verify(token);
    const { size, bytes } = w.useCases.verifyToken.cacheStats();
    expect(bytes).toBeLessThanOrEqual(verifyCacheShares(64 * 1024).claims);
    expect(size).toBeGreaterThan(70); // ~590 bytes an entry in 48 KiB
    expect(size).toBeLessThan(95);
    expect(bytes / size).toBeGreaterThan(500);
    expect(bytes / size).toBeLessThan(700);
    // The first tokens were evicted: verified again in full, not refused.
    expect(w.useCases.verifyToken.verify(tokens[0] as string).userId).toBeTruthy();
  });

  it("keeps answers ready for the most used tokens only, within the answers' share", async () => {
    const rpc = verifyTokenRpc(w.useCases.verifyToken, 64 * 1024);
    const keptAnswers = Math.floor(verifyCacheShares(64 * 1024).answers / KEPT_RESPONSE_BYTES); // 20
    const tokens: string[] = [];
    for (let i = 0; i < keptAnswers + 5; i++) tokens.push((await w.login()).tokens.accessToken);
    const ask = (token: string) => rpc(create(VerifyTokenRequestSchema, { accessToken: token }));
    const first = ask(tokens[0] as string);
    expect(ask(tokens[0] as string)).toBe(first); // the same message again: its encoding is reused
    for (const token of tokens.slice(1)) ask(token);
    // Pushed out by the newer answers: made anew, the same claims.
    const again = ask(tokens[0] as string);
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
    const last = tokens.at(-1) as string;
    expect(ask(last)).toBe(ask(last));
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
