import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityError } from "../../src/domain/errors.js";
import { rejection } from "../helpers/failures.js";
import { TEST_APPS } from "../helpers/test-app.js";
import { createUseCaseWorld, type UseCaseWorld } from "../helpers/use-case-world.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
const noClient = { ip: "", userAgent: "", deviceId: "" };

describe("Login (use case, in-memory stores)", () => {
  let w: UseCaseWorld;
  beforeAll(async () => {
    w = await createUseCaseWorld();
  });
  afterAll(() => w.close());

  it("creates the user on the first login, finds the same one after, and issues tokens VerifyToken accepts", async () => {
    const first = await w.login("alice");
    expect(first.newUser).toBe(true);
    expect(first.user).toMatchObject({ appId: APP.appId, openid: "alice", roles: [] });
    const again = await w.login("alice");
    expect(again.newUser).toBe(false);
    expect(again.user.id).toBe(first.user.id);
    expect(again.tokens.accessClaims.sessionId).not.toBe(first.tokens.accessClaims.sessionId);
    expect(w.useCases.verifyToken.verify(first.tokens.accessToken)).toMatchObject({
      userId: first.user.id,
      openid: "alice",
      appId: APP.appId,
    });
  });

  it("keeps the session_key and gives a refresh token that lives as long as the idle lifetime", async () => {
    const { tokens } = await w.login("bob");
    // Both lifetimes run from the login's instant (the access token's iat, in whole seconds).
    const loginAt = tokens.refreshTokenExpiresAt.getTime() - w.config.tokens.refreshIdleTtlMs;
    expect(Math.floor(loginAt / 1000)).toBe(tokens.accessClaims.issuedAt);
    expect(tokens.accessClaims.expiresAt - tokens.accessClaims.issuedAt).toBe(
      w.config.tokens.accessTokenTtlMs / 1000,
    );
  });

  it("answers a retry of the same attempt with the same session, asking WeChat once", async () => {
    const { code } = w.sandbox.issueCode({ appId: APP.appId, openid: "carol" });
    const before = w.sandbox.stats.code2SessionCalls;
    const attempt = { appId: APP.appId, code, attemptId: "attempt-carol", client: noClient };
    const [a, b] = await Promise.all([w.useCases.login(attempt), w.useCases.login(attempt)]);
    const late = await w.useCases.login(attempt);
    expect(w.sandbox.stats.code2SessionCalls - before).toBe(1);
    for (const again of [b, late]) {
      expect(again.tokens.accessClaims.sessionId).toBe(a.tokens.accessClaims.sessionId);
      expect(again.tokens.refreshToken).toBe(a.tokens.refreshToken);
      expect(again.user.id).toBe(a.user.id);
    }
    const sessions = [...w.db.sessions.values()].filter((s) => s.userId === a.user.id);
    expect(sessions).toHaveLength(1);
    // The one session works: its refresh token rotates.
    expect((await w.useCases.refresh(a.tokens.refreshToken)).accessClaims.sessionId).toBe(
      a.tokens.accessClaims.sessionId,
    );
  });

  it("refuses a used code to another attempt or to none (CODE_USED), so a code seen in a log opens nothing", async () => {
    const { code } = w.sandbox.issueCode({ appId: APP.appId, openid: "carl" });
    await w.useCases.login({ appId: APP.appId, code, attemptId: "mine", client: noClient });
    for (const attemptId of ["someone-else", ""]) {
      const used = await rejection(
        w.useCases.login({ appId: APP.appId, code, attemptId, client: noClient }),
        IdentityError,
      );
      expect(used.reason).toBe("CODE_USED");
    }
  });

  it("refuses a code WeChat does not know, and a disabled user", async () => {
    const unknown = await rejection(
      w.useCases.login({ appId: APP.appId, code: "never-issued", attemptId: "", client: noClient }),
      IdentityError,
    );
    expect(unknown.reason).toBe("INVALID_CODE");

    const { user } = await w.login("dave");
    (w.db.users.get(user.id) as { disabledAt: Date | null }).disabledAt = new Date();
    expect((await rejection(w.login("dave"), IdentityError)).reason).toBe("USER_DISABLED");
  });

  it("names an unknown app before asking WeChat", async () => {
    const before = w.sandbox.stats.code2SessionCalls;
    const app = await rejection(
      w.useCases.login({ appId: "wxnotours", code: "c", attemptId: "", client: noClient }),
      IdentityError,
    );
    expect(app).toMatchObject({ reason: "UNKNOWN_APP", metadata: { field: "app_id" } });
    expect(w.sandbox.stats.code2SessionCalls).toBe(before);
  });
});
