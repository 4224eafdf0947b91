import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityError } from "../../src/domain/errors.js";
import { rejection } from "../helpers/failures.js";
import { createUseCaseWorld, type UseCaseWorld } from "../helpers/use-case-world.js";

describe("Refresh (use case, in-memory stores)", () => {
  let w: UseCaseWorld;
  beforeAll(async () => {
    w = await createUseCaseWorld({ REFRESH_TOKEN_REUSE_GRACE: "10" });
  });
  afterAll(() => w.close());

  it("spends the refresh token and returns a new pair for the same session", async () => {
    const { tokens } = await w.login();
    const next = await w.useCases.refresh(tokens.refreshToken);
    expect(next.refreshToken).not.toBe(tokens.refreshToken);
    expect(next.accessClaims.sessionId).toBe(tokens.accessClaims.sessionId);
    expect(w.useCases.verifyToken.verify(next.accessToken).userId).toBe(tokens.accessClaims.userId);
    expect((await w.useCases.refresh(next.refreshToken)).accessClaims.sessionId).toBe(
      tokens.accessClaims.sessionId,
    );
  });

  it("gives the just-spent token the same successor within the grace, and ends the session after it", async () => {
    const { tokens } = await w.login();
    const next = await w.useCases.refresh(tokens.refreshToken);
    const parallel = await w.useCases.refresh(tokens.refreshToken);
    expect(parallel.refreshToken).toBe(next.refreshToken);

    w.clock.advance(w.config.tokens.refreshReuseGraceMs + 1000);
    const reused = await rejection(w.useCases.refresh(tokens.refreshToken), IdentityError);
    expect(reused.reason).toBe("REFRESH_TOKEN_REUSED");
    // The whole session is over: its access tokens and its newest refresh token too.
    expect(() => w.useCases.verifyToken.verify(next.accessToken)).toThrow(
      expect.objectContaining({ reason: "TOKEN_REVOKED" }),
    );
    expect((await rejection(w.useCases.refresh(next.refreshToken), IdentityError)).reason).toBe(
      "TOKEN_REVOKED",
    );
  });

  it("erases a spent token's successor once the grace has passed, and a late reuse still ends the session", async () => {
    const { tokens } = await w.login();
    await w.useCases.refresh(tokens.refreshToken);
    const spent = [...w.db.refreshTokens.values()].find(
      (t) => t.sessionId === tokens.accessClaims.sessionId && t.generation === 0,
    );
    expect(spent?.sealedSuccessor).not.toBeNull();
    await w.eraseSpentSuccessors();
    expect(spent?.sealedSuccessor).not.toBeNull(); // still within the grace
    w.clock.advance(w.config.tokens.refreshReuseGraceMs + 1000);
    expect(await w.eraseSpentSuccessors()).toBeGreaterThanOrEqual(1);
    expect(spent?.sealedSuccessor).toBeNull();
    expect((await rejection(w.useCases.refresh(tokens.refreshToken), IdentityError)).reason).toBe(
      "REFRESH_TOKEN_REUSED",
    );
  });

  it("refuses a session past its idle lifetime, a token it never issued, and a missing one", async () => {
    const { tokens } = await w.login();
    w.clock.advance(w.config.tokens.refreshIdleTtlMs + 1000);
    expect((await rejection(w.useCases.refresh(tokens.refreshToken), IdentityError)).reason).toBe(
      "TOKEN_EXPIRED",
    );
    const unknown = await rejection(w.useCases.refresh("A".repeat(43)), IdentityError);
    expect(unknown.reason).toBe("TOKEN_INVALID");
    // An empty one never gets here: the proto requires it (test/unit/identity-service.test.ts).
    const missing = await rejection(w.useCases.refresh(""), IdentityError);
    expect(missing).toMatchObject({ reason: "TOKEN_INVALID" });
  });

  it("deletes a session once SESSION_RETENTION has passed since it ended, not before; live ones stay", async () => {
    const { tokens } = await w.login();
    const sessionId = tokens.accessClaims.sessionId;
    w.clock.advance(w.config.tokens.sessionAbsoluteTtlMs + 1000);
    await w.purgeEndedSessions();
    expect(w.db.sessions.has(sessionId)).toBe(true); // ended, but within the retention
    expect((await rejection(w.useCases.refresh(tokens.refreshToken), IdentityError)).reason).toBe(
      "TOKEN_EXPIRED",
    );
    w.clock.advance(w.config.sessionRetentionMs);
    const live = await w.login();
    expect(await w.purgeEndedSessions()).toBeGreaterThanOrEqual(1);
    expect(w.db.sessions.has(sessionId)).toBe(false);
    expect([...w.db.refreshTokens.values()].some((t) => t.sessionId === sessionId)).toBe(false);
    expect((await rejection(w.useCases.refresh(tokens.refreshToken), IdentityError)).reason).toBe(
      "TOKEN_INVALID",
    );
    expect(w.db.sessions.has(live.tokens.accessClaims.sessionId)).toBe(true);
    await w.useCases.refresh(live.tokens.refreshToken);
  });
});
