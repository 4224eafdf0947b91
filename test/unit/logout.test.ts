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
});
