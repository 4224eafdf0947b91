import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SessionStart, SessionStore, WechatIdentity } from "../../src/domain/ports.js";
import { hashRefreshToken } from "../../src/domain/tokens.js";
import { uniqueName } from "../helpers/scratch-database.js";
import {
  newSession,
  SESSION_STORE_BACKENDS,
  type SessionStoreBackend,
} from "../helpers/session-store-backends.js";

/**
 * The SessionStore and UserStore contract, run against every implementation: in memory (the use
 * cases' fast tests), embedded PGlite and the real PostgreSQL.
 */
function sessionStoresContract(name: string, open: () => Promise<SessionStoreBackend>) {
  describe(`SessionStore and UserStore: ${name}`, () => {
    let store: SessionStoreBackend;
    let sessions: SessionStore;

    beforeAll(async () => {
      store = await open();
      sessions = store.sessions;
    });
    afterAll(() => store.close());

    const login = (identity: WechatIdentity) => sessions.start(identity, newSession());
    const rotate = (tokenHash: Buffer, now = new Date(), timeLeftMs: number | null = null) =>
      sessions.rotateRefreshToken({
        tokenHash,
        now,
        timeLeftMs,
        successor: {
          tokenHash: hashRefreshToken(uniqueName("next")),
          sealedToken: "sealed",
          idleExpiresAt: new Date(now.getTime() + 1500),
        },
      });
    const logoutNow = () => ({ everySessionOfUser: false, reason: "logout", now: new Date() });

    describe("SessionStore.start (the login write)", () => {
      it("creates a user on first sight and finds the same one after", async () => {
        const identity = { appId: "wxa", openid: uniqueName("o"), unionid: null };
        const first = await login(identity);
        expect(first).toMatchObject({ created: true, sessionStored: true, unionid: null });
        const again = await login(identity);
        expect(again.created).toBe(false);
        expect(again.user.id).toBe(first.user.id);
        expect(again.user.roles).toEqual([]);
        expect(Math.abs(again.user.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
      });

      it("stores the session and its first refresh token hash (generation 0)", async () => {
        const session = newSession();
        const { user } = await sessions.start(
          { appId: "wxa", openid: uniqueName("o"), unionid: null },
          session,
        );
        const tokens = await store.refreshTokensOf(session.id);
        expect(tokens).toHaveLength(1);
        expect(Buffer.from(tokens[0]?.tokenHash as Buffer)).toEqual(session.refreshTokenHash);
        expect(tokens[0]?.generation).toBe(0);
        const stored = await store.storedSession(session.id);
        expect(stored).toMatchObject({
          userId: user.id,
          appId: "wxa",
          clientIp: "10.0.0.1",
          revokedAt: null,
        });
        expect(stored?.idleExpiresAt.getTime()).toBe(session.idleExpiresAt.getTime());
        expect(await sessions.listRevokedSince(new Date(0))).toEqual([]);
      });

      it("creates one user for 40 parallel first logins, exactly one says created, all get a session", async () => {
        const identity = { appId: "wxa", openid: uniqueName("race"), unionid: null };
        const results = await Promise.all(Array.from({ length: 40 }, () => login(identity)));
        expect(new Set(results.map((r) => r.user.id)).size).toBe(1);
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect(results.every((r) => r.sessionStored)).toBe(true);
        const stored = await store.sessionsOfUser(results[0]?.user.id as string);
        expect(stored).toHaveLength(40);
      });

      it("links one person's identities in two apps by unionid", async () => {
        const unionid = uniqueName("union");
        const inA = await login({ appId: "wxa", openid: uniqueName("o"), unionid });
        const inB = await login({ appId: "wxb", openid: uniqueName("o"), unionid });
        expect(inB.created).toBe(true); // new in app B...
        expect(inB.user.id).toBe(inA.user.id); // ...but the same person
        expect(inB.user.unionid).toBe(unionid);
      });

      it("makes one person of parallel first logins in several apps with one unionid", async () => {
        const unionid = uniqueName("union");
        const results = await Promise.all(
          ["wxa", "wxb", "wxc", "wxd"].map((appId) => login({ appId, openid: uniqueName("o"), unionid })),
        );
        expect(new Set(results.map((r) => r.user.id)).size).toBe(1);
        expect(results.every((r) => r.created && r.sessionStored)).toBe(true);
      });

      it("records a unionid that appears on a later login", async () => {
        const openid = uniqueName("o");
        const before = await login({ appId: "wxa", openid, unionid: null });
        expect(before.unionid).toBeNull();
        const unionid = uniqueName("union");
        const after = await login({ appId: "wxa", openid, unionid });
        expect(after.unionid).toBe(unionid);
        expect(after.user.unionid).toBe(unionid);
        // A later app login with that unionid now finds the same person.
        const other = await login({ appId: "wxc", openid: uniqueName("o"), unionid });
        expect(other.user.id).toBe(before.user.id);
      });

      it("stores no session for a disabled user", async () => {
        const identity = { appId: "wxa", openid: uniqueName("o"), unionid: null };
        const { user } = await login(identity);
        await store.disableUser(user.id);
        const session = newSession();
        const refused = await sessions.start(identity, session);
        expect(refused.sessionStored).toBe(false);
        expect(refused.user.disabledAt).toBeInstanceOf(Date);
        expect(await store.storedSession(session.id)).toBe(undefined);
      });
    });

    describe("SessionStore refresh and revoke", () => {
      it("rotates the newest token once, then reports it spent with its sealed successor", async () => {
        const session = newSession();
        await sessions.start({ appId: "wxa", openid: uniqueName("o"), unionid: null }, session);
        const first = await rotate(session.refreshTokenHash);
        expect(first).toMatchObject({
          found: true,
          rotated: true,
          session: { id: session.id, generation: 1 },
        });
        const again = await rotate(session.refreshTokenHash);
        expect(again).toMatchObject({
          found: true,
          rotated: false,
          token: { generation: 0, sealedSuccessor: "sealed" },
        });
        expect(again.found && again.token.spentAt).toBeInstanceOf(Date);
        expect(await rotate(hashRefreshToken("never issued"))).toEqual({ found: false });
      });

      it("does not rotate once the time left has run out, and changes nothing", async () => {
        const session = newSession();
        await sessions.start({ appId: "wxa", openid: uniqueName("o"), unionid: null }, session);
        expect(await rotate(session.refreshTokenHash, new Date(), 0)).toMatchObject({
          found: true,
          rotated: false,
          tooLate: true,
          token: { generation: 0, spentAt: null },
        });
        expect(await rotate(session.refreshTokenHash, new Date(), 5000)).toMatchObject({
          rotated: true,
          tooLate: false,
        });
      });

      it("does not rotate for a disabled user, a revoked or an expired session", async () => {
        const disabled = newSession();
        const { user } = await sessions.start(
          { appId: "wxa", openid: uniqueName("o"), unionid: null },
          disabled,
        );
        await store.disableUser(user.id);
        expect(await rotate(disabled.refreshTokenHash)).toMatchObject({
          rotated: false,
          session: { userDisabled: true },
        });

        const revoked = newSession();
        await sessions.start({ appId: "wxa", openid: uniqueName("o"), unionid: null }, revoked);
        await sessions.revoke({ sessionId: revoked.id }, logoutNow());
        const result = await rotate(revoked.refreshTokenHash);
        expect(result.found && !result.rotated && result.session.revokedAt).toBeInstanceOf(Date);

        const expired = newSession(); // idle lifetime 1 s
        await sessions.start({ appId: "wxa", openid: uniqueName("o"), unionid: null }, expired);
        expect(await rotate(expired.refreshTokenHash, new Date(Date.now() + 5000))).toMatchObject({
          rotated: false,
        });
      });
    });

    describe("SessionStore.listLiveSessions (a user's own list)", () => {
      it("lists the user's sessions neither revoked nor expired, newest first, with where each came from", async () => {
        const identity = { appId: "wxa", openid: uniqueName("list"), unionid: null };
        const t0 = Date.now();
        const startedAt = (ms: number, client = { ip: "10.0.0.1", userAgent: "ua", deviceId: "d" }) => ({
          ...newSession(),
          createdAt: new Date(t0 + ms),
          idleExpiresAt: new Date(t0 + 60_000),
          absoluteExpiresAt: new Date(t0 + 120_000),
          client,
        });
        const older = startedAt(-3000);
        const newer = startedAt(-1000, { ip: "10.0.0.2", userAgent: "ua2", deviceId: "d2" });
        const revoked = startedAt(-2000);
        const idle = { ...startedAt(-4000), idleExpiresAt: new Date(t0 - 1) };
        const { user } = await sessions.start(identity, older);
        for (const session of [newer, revoked, idle]) await sessions.start(identity, session);
        await sessions.start(
          { appId: "wxa", openid: uniqueName("someone-else"), unionid: null },
          startedAt(0),
        );
        // Named with a user, only that user's session ends.
        expect(await sessions.revoke({ sessionId: revoked.id, userId: newer.id }, logoutNow())).toEqual([]);
        expect(await sessions.revoke({ sessionId: revoked.id, userId: user.id }, logoutNow())).toHaveLength(
          1,
        );
        const now = new Date(t0);

        const listed = await sessions.listLiveSessions(user.id, now, 10);
        expect(listed.map((s) => s.id)).toEqual([newer.id, older.id]);
        expect(listed[0]).toEqual({
          id: newer.id,
          appId: "wxa",
          createdAt: newer.createdAt,
          lastRefreshedAt: null,
          client: newer.client,
        });
        expect((await sessions.listLiveSessions(user.id, now, 1)).map((s) => s.id)).toEqual([newer.id]);
        expect(await sessions.listLiveSessions(user.id, new Date(t0 + 120_000), 10)).toEqual([]);

        expect(await rotate(older.refreshTokenHash, now)).toMatchObject({ found: true, rotated: true });
        const refreshed = (await sessions.listLiveSessions(user.id, now, 10)).find((s) => s.id === older.id);
        expect(refreshed?.lastRefreshedAt?.getTime()).toBe(now.getTime());
      });
    });

    describe("SessionStore.eraseSealedSuccessors", () => {
      it("erases the sealed successors of tokens spent before the given instant, and only those", async () => {
        const session = newSession();
        await sessions.start({ appId: "wxa", openid: uniqueName("o"), unionid: null }, session);
        const spentAt = new Date();
        await rotate(session.refreshTokenHash, spentAt);
        await sessions.eraseSealedSuccessors(new Date(spentAt.getTime() - 1)); // spent after: kept
        expect(await rotate(session.refreshTokenHash)).toMatchObject({
          token: { sealedSuccessor: "sealed" },
        });
        expect(await sessions.eraseSealedSuccessors(new Date(spentAt.getTime() + 1))).toBeGreaterThanOrEqual(
          1,
        );
        expect(await rotate(session.refreshTokenHash)).toMatchObject({
          rotated: false,
          token: { generation: 0, sealedSuccessor: null },
        });
      });
    });

    describe("SessionStore.purgeEndedSessions (retention)", () => {
      const HOUR = 3600_000;
      /** A session that started `startedHoursAgo` hours ago and expires absolutely after `ttlHours`. */
      const sessionFrom = (startedHoursAgo: number, ttlHours: number): SessionStart => {
        const createdAt = new Date(Date.now() - startedHoursAgo * HOUR);
        const absoluteExpiresAt = new Date(createdAt.getTime() + ttlHours * HOUR);
        return { ...newSession(), createdAt, idleExpiresAt: absoluteExpiresAt, absoluteExpiresAt };
      };
      const stored = async (session: SessionStart) => (await store.refreshTokensOf(session.id)).length > 0;

      it("deletes sessions ended before the cutoff, by expiry or revocation, with their tokens; users stay", async () => {
        const identity = { appId: "wxa", openid: uniqueName("o"), unionid: null };
        const expired = sessionFrom(3, 1);
        const live = sessionFrom(3, 24);
        const revokedLongAgo = sessionFrom(3, 24);
        const revokedJustNow = sessionFrom(3, 24);
        let userId = "";
        for (const session of [expired, live, revokedLongAgo, revokedJustNow])
          userId = (await sessions.start(identity, session)).user.id;
        await rotate(live.refreshTokenHash);
        const twoHoursAgo = new Date(Date.now() - 2 * HOUR);
        await sessions.revoke({ sessionId: revokedLongAgo.id }, { ...logoutNow(), now: twoHoursAgo });
        await sessions.revoke({ sessionId: revokedJustNow.id }, logoutNow());

        const cutoff = new Date(Date.now() - HOUR / 2);
        expect(await sessions.purgeEndedSessions(cutoff, 1000)).toBeGreaterThanOrEqual(2);
        expect(await stored(expired)).toBe(false);
        expect(await stored(revokedLongAgo)).toBe(false);
        expect(await stored(revokedJustNow)).toBe(true);
        expect(await store.refreshTokensOf(live.id)).toHaveLength(2);
        expect(await rotate(expired.refreshTokenHash)).toEqual({ found: false });
        expect(await sessions.purgeEndedSessions(cutoff, 1000)).toBe(0);
        const again = await login(identity);
        expect(again).toMatchObject({ created: false, user: { id: userId } });
      });

      it("deletes at most `limit` sessions a call", async () => {
        const identity = { appId: "wxa", openid: uniqueName("o"), unionid: null };
        for (let i = 0; i < 3; i++) await sessions.start(identity, sessionFrom(5, 1));
        const cutoff = new Date(Date.now() - 2 * HOUR);
        expect(await sessions.purgeEndedSessions(cutoff, 2)).toBe(2);
        expect(await sessions.purgeEndedSessions(cutoff, 2)).toBe(1);
        expect(await sessions.purgeEndedSessions(cutoff, 2)).toBe(0);
      });
    });

    describe("UserStore", () => {
      it("changes a profile field by field, which the next login's user carries", async () => {
        const identity = { appId: "wxa", openid: uniqueName("o"), unionid: null };
        const { user } = await login(identity);
        expect(user).toMatchObject({ nickname: null, avatarUrl: null });
        expect(await store.users.updateProfile(user.id, { nickname: "小明" })).toMatchObject({
          id: user.id,
          nickname: "小明",
          avatarUrl: null,
        });
        const both = await store.users.updateProfile(user.id, { avatarUrl: "https://cdn.example/a.png" });
        expect(both).toMatchObject({ nickname: "小明", avatarUrl: "https://cdn.example/a.png", roles: [] });
        expect((await login(identity)).user).toMatchObject({
          nickname: "小明",
          avatarUrl: "https://cdn.example/a.png",
        });
        expect(
          await store.users.updateProfile("00000000-0000-7000-8000-000000000000", { nickname: "x" }),
        ).toBeNull();
      });
    });

    describe("SessionStore.revoke (logout)", () => {
      it("ends a session by id or by any of its refresh tokens, once", async () => {
        const byId = newSession();
        await sessions.start({ appId: "wxa", openid: uniqueName("o"), unionid: null }, byId);
        const ended = await sessions.revoke({ sessionId: byId.id }, logoutNow());
        expect(ended.map((r) => r.id)).toEqual([byId.id]);
        // Remembered until an access token issued just before could have expired (1 h here).
        expect(ended[0]?.forgetAfter.getTime()).toBeGreaterThan(Date.now() + 3500_000);
        expect(await sessions.revoke({ sessionId: byId.id }, logoutNow())).toEqual([]); // already ended
        expect((await sessions.listRevokedSince(new Date(Date.now() - 60_000))).map((r) => r.id)).toContain(
          byId.id,
        );

        const byToken = newSession();
        await sessions.start({ appId: "wxa", openid: uniqueName("o"), unionid: null }, byToken);
        await rotate(byToken.refreshTokenHash); // the first token is now spent: it still names the session
        expect(
          (await sessions.revoke({ refreshTokenHash: byToken.refreshTokenHash }, logoutNow())).map(
            (r) => r.id,
          ),
        ).toEqual([byToken.id]);

        expect(await sessions.revoke({ sessionId: crypto.randomUUID() }, logoutNow())).toEqual([]);
        expect(await sessions.revoke({ refreshTokenHash: hashRefreshToken("unknown") }, logoutNow())).toEqual(
          [],
        );
      });

      it("ends every live session of the user with everySessionOfUser, and no one else's", async () => {
        const identity = { appId: "wxa", openid: uniqueName("o"), unionid: null };
        const mine = [newSession(), newSession(), newSession()];
        for (const s of mine) await sessions.start(identity, s);
        const othersSession = newSession();
        await sessions.start({ appId: "wxa", openid: uniqueName("o"), unionid: null }, othersSession);

        const ended = await sessions.revoke(
          { refreshTokenHash: (mine[0] as SessionStart).refreshTokenHash },
          { ...logoutNow(), everySessionOfUser: true },
        );
        expect(ended.map((r) => r.id).sort()).toEqual(mine.map((s) => s.id).sort());
        expect(await rotate(othersSession.refreshTokenHash)).toMatchObject({ rotated: true });
      });
    });
  });
}

for (const { name, open } of SESSION_STORE_BACKENDS) sessionStoresContract(name, open);
