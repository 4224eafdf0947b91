import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
  SessionStart,
  SessionStore,
  SigningKeyStore,
  StoredSigningKey,
  WechatIdentity,
} from "../../src/domain/ports.js";
import { hashRefreshToken } from "../../src/domain/tokens.js";
import type { DatabaseHandle } from "../../src/store/pg/database.js";
import { users as usersTable, wechatIdentities } from "../../src/store/pg/schema.js";
import { createPgSessionStore } from "../../src/store/pg/session-store.js";
import { createPgSigningKeyStore } from "../../src/store/pg/signing-key-store.js";
import { createPgUserStore } from "../../src/store/pg/user-store.js";
import { type OpenedDatabase, PG_DATABASES, REAL_DATABASE_URL } from "../helpers/backends.js";
import { uniqueName } from "../helpers/scratch-database.js";

/** The Postgres stores, run against embedded PGlite and against the real server. */
function pgStoresContract(name: string, open: () => Promise<OpenedDatabase>) {
  describe(`Postgres stores: ${name}`, () => {
    let handle: DatabaseHandle;
    let drop: () => Promise<void>;
    let sessions: SessionStore;
    let keys: SigningKeyStore;

    beforeAll(async () => {
      ({ handle, drop } = await open());
      await handle.migrate();
      await handle.migrate(); // applying twice is a no-op
      sessions = createPgSessionStore(handle.db, { maxAccessTokenTtlMs: 3600_000 });
      keys = createPgSigningKeyStore(handle.db);
    });
    afterAll(async () => {
      await handle.close();
      await drop();
    });

    /** A login's session, each with its own id and refresh token hash. */
    const newSession = (): SessionStart => {
      const now = new Date();
      return {
        id: crypto.randomUUID(),
        refreshTokenHash: hashRefreshToken(uniqueName("rt")),
        createdAt: now,
        idleExpiresAt: new Date(now.getTime() + 1000),
        absoluteExpiresAt: new Date(now.getTime() + 2000),
        client: { ip: "10.0.0.1", userAgent: "ua", deviceId: "d" },
      };
    };
    const login = (identity: WechatIdentity) => sessions.start(identity, newSession());
    const rotate = (tokenHash: Buffer, now = new Date()) =>
      sessions.rotateRefreshToken({
        tokenHash,
        now,
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
        const tokens = await handle.db.query.refreshTokens.findMany({
          where: (t, { eq }) => eq(t.sessionId, session.id),
        });
        expect(tokens).toHaveLength(1);
        expect(Buffer.from(tokens[0]?.tokenHash as Buffer)).toEqual(session.refreshTokenHash);
        expect(tokens[0]?.generation).toBe(0);
        const stored = await handle.db.query.sessions.findFirst({
          where: (t, { eq }) => eq(t.id, session.id),
        });
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
        const stored = await handle.db.query.sessions.findMany({
          where: (t, { eq }) => eq(t.userId, results[0]?.user.id as string),
        });
        expect(stored).toHaveLength(40);
      });

      it("a login that waits on another's uncommitted first login joins the winner's user", async () => {
        const identity = { appId: "wxa", openid: uniqueName("o"), unionid: null };
        let waiting: Promise<Awaited<ReturnType<SessionStore["start"]>>> | undefined;
        const winner = await handle.db.transaction(async (tx) => {
          const [user] = await tx.insert(usersTable).values({}).returning();
          await tx.insert(wechatIdentities).values({ ...identity, userId: user?.id as string });
          // On a server this login's insert waits for the open transaction (PGlite queues it).
          waiting = login(identity);
          await new Promise((resolve) => setTimeout(resolve, 200));
          return user;
        });
        const joined = await waiting;
        expect(joined?.user.id).toBe(winner?.id);
        expect(joined?.created).toBe(false);
        expect(joined?.sessionStored).toBe(true);
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
        await handle.db.update(usersTable).set({ disabledAt: new Date() }).where(eq(usersTable.id, user.id));
        const session = newSession();
        const refused = await sessions.start(identity, session);
        expect(refused.sessionStored).toBe(false);
        expect(refused.user.disabledAt).toBeInstanceOf(Date);
        expect(await handle.db.query.sessions.findFirst({ where: (t, { eq }) => eq(t.id, session.id) })).toBe(
          undefined,
        );
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

      it("does not rotate for a disabled user, a revoked or an expired session", async () => {
        const disabled = newSession();
        const { user } = await sessions.start(
          { appId: "wxa", openid: uniqueName("o"), unionid: null },
          disabled,
        );
        await handle.db.update(usersTable).set({ disabledAt: new Date() }).where(eq(usersTable.id, user.id));
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

    describe("UserStore", () => {
      it("binds a phone number, which the next login's user carries", async () => {
        const identity = { appId: "wxa", openid: uniqueName("o"), unionid: null };
        const { user } = await login(identity);
        expect(user.phoneNumber).toBeNull();
        await createPgUserStore(handle.db).bindPhoneNumber(user.id, "+86 13912345678");
        expect((await login(identity)).user.phoneNumber).toBe("+86 13912345678");
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

    describe("SigningKeyStore", () => {
      it("creates exactly one key when instances start together", async () => {
        let generated = 0;
        const now = new Date();
        const generate = (): StoredSigningKey => {
          generated++;
          return {
            kid: uniqueName("kid"),
            alg: "ES256",
            publicJwk: { kty: "EC" },
            sealedPrivateKey: "sealed",
            createdAt: now,
            activatesAt: now,
            retiresAt: null,
          };
        };
        const results = await Promise.all(
          Array.from({ length: 5 }, () => keys.ensureSigningKey(now, generate)),
        );
        expect(generated).toBe(1);
        for (const result of results) expect(result.map((k) => k.kid)).toEqual(results[0]?.map((k) => k.kid));
        expect(await keys.ensureSigningKey(now, generate)).toHaveLength(1);
      });

      it("rotates once: the next key is added, the current ones retire, a second rotation waits", async () => {
        const now = new Date();
        const later = (ms: number) => new Date(now.getTime() + ms);
        const key = (activatesAt: Date): StoredSigningKey => ({
          kid: uniqueName("kid"),
          alg: "ES256",
          publicJwk: { kty: "EC" },
          sealedPrivateKey: "sealed",
          createdAt: now,
          activatesAt,
          retiresAt: null,
        });
        const before = await keys.ensureSigningKey(now, () => key(now));
        // Parallel rotations (two instances on schedule, or the command twice): one wins.
        const results = await Promise.all(
          [1, 2, 3].map(() => keys.rotate(now, key(later(600_000)), later(8_000_000))),
        );
        expect(results.filter((r) => r.rotated)).toHaveLength(1);
        const after = (results.find((r) => r.rotated) as (typeof results)[0]).keys;
        expect(after).toHaveLength(before.length + 1);
        expect(after.at(-1)?.activatesAt).toEqual(later(600_000));
        for (const old of after.slice(0, -1)) expect(old.retiresAt).toEqual(later(8_000_000));
        // Once retired, a key is no longer listed.
        expect(await keys.ensureSigningKey(later(8_000_001), () => key(now))).toEqual([
          { ...(after.at(-1) as StoredSigningKey), retiresAt: null },
        ]);
      });
    });
  });
}

for (const { name, open } of PG_DATABASES) pgStoresContract(name, open);
if (!REAL_DATABASE_URL) {
  describe.skip("Postgres stores: PostgreSQL (set DATABASE_URL to run)", () => {
    it("runs the contract against PostgreSQL", () => {});
  });
}
