import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityError } from "../../src/domain/errors.js";
import { rejection } from "../helpers/failures.js";
import { createUseCaseWorld, type UseCaseWorld } from "../helpers/use-case-world.js";

describe("Logout (use case, in-memory stores)", () => {
  let w: UseCaseWorld;
  beforeAll(async () => {
    w = await createUseCaseWorld();
  });
  afterAll(() => w.close());

  const revoked = (accessToken: string) =>
    expect(() => w.useCases.verifyToken.verify(accessToken)).toThrow(
      expect.objectContaining({ reason: "TOKEN_REVOKED" }),
    );

  it("ends the session behind an access token, once", async () => {
    const { tokens } = await w.login();
    const noRefresh = { refreshToken: "", allSessions: false };
    expect(await w.useCases.logout({ accessToken: tokens.accessToken, ...noRefresh })).toEqual({
      sessionsEnded: 1,
    });
    revoked(tokens.accessToken);
    expect((await rejection(w.useCases.refresh(tokens.refreshToken), IdentityError)).reason).toBe(
      "TOKEN_REVOKED",
    );
    expect(await w.useCases.logout({ accessToken: tokens.accessToken, ...noRefresh })).toEqual({
      sessionsEnded: 0,
    });
  });

  it("ends the session behind a refresh token, and with allSessions every session of the user", async () => {
    const one = await w.login("erin");
    const two = await w.login("erin");
    const other = await w.login("frank");
    const ended = await w.useCases.logout({
      accessToken: "",
      refreshToken: one.tokens.refreshToken,
      allSessions: true,
    });
    expect(ended).toEqual({ sessionsEnded: 2 });
    revoked(one.tokens.accessToken);
    revoked(two.tokens.accessToken);
    expect(w.useCases.verifyToken.verify(other.tokens.accessToken).openid).toBe("frank");
  });

  it("answers OK for a token that is not (or no longer) ours, and refuses what cannot be a token", async () => {
    const { tokens } = await w.login();
    const [header, payload] = tokens.accessToken.split(".");
    const forged = `${header}.${payload}.${"A".repeat(86)}`;
    expect(await w.useCases.logout({ accessToken: forged, refreshToken: "", allSessions: false })).toEqual({
      sessionsEnded: 0,
    });
    expect(w.useCases.verifyToken.verify(tokens.accessToken).sessionId).toBe(tokens.accessClaims.sessionId);
    const bad = await rejection(
      w.useCases.logout({ accessToken: "not a jwt", refreshToken: "", allSessions: false }),
      IdentityError,
    );
    expect(bad).toMatchObject({ reason: "INVALID_ARGUMENT", metadata: { field: "access_token" } });
  });
  it("lets an expired access token name its session only as long as a refresh could have kept it alive", async () => {
    const recent = await w.login();
    const old = await w.login();
    w.clock.advance(w.config.tokens.accessTokenTtlMs + 60_000); // both expired
    const noRefresh = { refreshToken: "", allSessions: false };
    expect(await w.useCases.logout({ accessToken: recent.tokens.accessToken, ...noRefresh })).toEqual({
      sessionsEnded: 1,
    });
    w.clock.advance(w.config.tokens.refreshIdleTtlMs); // past the window: the token names nothing
    expect(await w.useCases.logout({ accessToken: old.tokens.accessToken, ...noRefresh })).toEqual({
      sessionsEnded: 0,
    });
  });

  it("ends every session only with an unexpired access token or the session's current refresh token", async () => {
    const one = await w.login("gina");
    const two = await w.login("gina");
    const refreshed = await w.useCases.refresh(two.tokens.refreshToken); // two's first token is spent now

    // A spent refresh token (say, from a log) ends its own session, no other.
    expect(
      await w.useCases.logout({ accessToken: "", refreshToken: two.tokens.refreshToken, allSessions: true }),
    ).toEqual({ sessionsEnded: 1 });
    expect(w.useCases.verifyToken.verify(one.tokens.accessToken).openid).toBe("gina");

    // An expired access token alone is refused for all_sessions, and ends nothing.
    w.clock.advance(w.config.tokens.accessTokenTtlMs + 60_000);
    const expired = await rejection(
      w.useCases.logout({ accessToken: one.tokens.accessToken, refreshToken: "", allSessions: true }),
      IdentityError,
    );
    expect(expired.reason).toBe("TOKEN_EXPIRED");
    const three = await w.login("gina");
    expect((await w.useCases.refresh(one.tokens.refreshToken)).accessClaims.sessionId).toBe(
      one.tokens.accessClaims.sessionId,
    );

    // An unexpired access token ends them all.
    expect(
      await w.useCases.logout({ accessToken: three.tokens.accessToken, refreshToken: "", allSessions: true }),
    ).toEqual({ sessionsEnded: 2 });
    expect(refreshed.accessClaims.sessionId).toBe(two.tokens.accessClaims.sessionId);
  });
});
