import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SessionStore, SigningKeyStore, StoredSigningKey, UserStore } from "../../src/domain/ports.js";
import { hashRefreshToken } from "../../src/domain/tokens.js";
import { type DatabaseHandle, openPglite, openPostgres } from "../../src/store/pg/database.js";
import { createPgSessionStore } from "../../src/store/pg/session-store.js";
import { createPgSigningKeyStore } from "../../src/store/pg/signing-key-store.js";
import { createPgUserStore } from "../../src/store/pg/user-store.js";
import { createTestDatabase, REAL_DATABASE_URL, uniqueName } from "../helpers/backends.js";

/** The Postgres stores, run against embedded PGlite and against the real server. */
function pgStoresContract(
  name: string,
  open: () => Promise<{ handle: DatabaseHandle; drop(): Promise<void> }>,
) {
  describe(`Postgres stores: ${name}`, () => {
    let handle: DatabaseHandle;
    let drop: () => Promise<void>;
    let users: UserStore;
    let sessions: SessionStore;
    let keys: SigningKeyStore;

    beforeAll(async () => {
      ({ handle, drop } = await open());
      await handle.migrate();
      await handle.migrate(); // applying twice is a no-op
      users = createPgUserStore(handle.db);
      sessions = createPgSessionStore(handle.db, { maxAccessTokenTtlMs: 3600_000 });
      keys = createPgSigningKeyStore(handle.db);
    });
    afterAll(async () => {
      await handle.close();
      await drop();
    });

    describe("UserStore", () => {
      it("creates a user on first sight and finds the same one after", async () => {
        const identity = { appId: "wxa", openid: uniqueName("o"), unionid: null };
        const first = await users.findOrCreateByWechat(identity);
        expect(first.created).toBe(true);
        const again = await users.findOrCreateByWechat(identity);
        expect(again.created).toBe(false);
        expect(again.user.id).toBe(first.user.id);
        expect(again.user.roles).toEqual([]);
      });

      it("creates one user for 40 parallel first logins, and exactly one says created", async () => {
        const identity = { appId: "wxa", openid: uniqueName("race"), unionid: null };
        const results = await Promise.all(
          Array.from({ length: 40 }, () => users.findOrCreateByWechat(identity)),
        );
        expect(new Set(results.map((r) => r.user.id)).size).toBe(1);
        expect(results.filter((r) => r.created)).toHaveLength(1);
      });

      it("links one person's identities in two apps by unionid", async () => {
        const unionid = uniqueName("union");
        const inA = await users.findOrCreateByWechat({ appId: "wxa", openid: uniqueName("o"), unionid });
        const inB = await users.findOrCreateByWechat({ appId: "wxb", openid: uniqueName("o"), unionid });
        expect(inB.created).toBe(true); // new in app B...
        expect(inB.user.id).toBe(inA.user.id); // ...but the same person
        expect(inB.user.unionid).toBe(unionid);
      });

      it("records a unionid that appears on a later login", async () => {
        const openid = uniqueName("o");
        const before = await users.findOrCreateByWechat({ appId: "wxa", openid, unionid: null });
        expect(before.unionid).toBeNull();
        const unionid = uniqueName("union");
        const after = await users.findOrCreateByWechat({ appId: "wxa", openid, unionid });
        expect(after.unionid).toBe(unionid);
        expect(after.user.unionid).toBe(unionid);
        // A later app login with that unionid now finds the same person.
        const other = await users.findOrCreateByWechat({ appId: "wxc", openid: uniqueName("o"), unionid });
        expect(other.user.id).toBe(before.user.id);
      });
    });

    describe("SessionStore", () => {
      it("creates a session with its first refresh token hash in one write", async () => {
        const { user } = await users.findOrCreateByWechat({
          appId: "wxa",
          openid: uniqueName("o"),
          unionid: null,
        });
        const id = crypto.randomUUID();
        const now = new Date();
        await sessions.create({
          id,
          userId: user.id,
          appId: "wxa",
          openid: "o",
          refreshTokenHash: hashRefreshToken("rt"),
          createdAt: now,
          idleExpiresAt: new Date(now.getTime() + 1000),
          absoluteExpiresAt: new Date(now.getTime() + 2000),
          client: { ip: "10.0.0.1", userAgent: "ua", deviceId: "d" },
        });
        const rows = await handle.db.query.refreshTokens.findMany({
          where: (t, { eq }) => eq(t.sessionId, id),
        });
        expect(rows).toHaveLength(1);
        expect(Buffer.from(rows[0]?.tokenHash as Buffer)).toEqual(hashRefreshToken("rt"));
        expect(rows[0]?.generation).toBe(0);
        const session = await handle.db.query.sessions.findFirst({ where: (t, { eq }) => eq(t.id, id) });
        expect(session).toMatchObject({ userId: user.id, clientIp: "10.0.0.1", revokedAt: null });
        expect(await sessions.listRevokedSince(new Date(0))).toEqual([]);
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
    });
  });
}

pgStoresContract("PGlite (embedded)", async () => ({
  handle: await openPglite("memory://"),
  drop: async () => {},
}));

if (REAL_DATABASE_URL) {
  pgStoresContract("PostgreSQL", async () => {
    const database = await createTestDatabase(REAL_DATABASE_URL as string);
    return { handle: openPostgres(database.url), drop: database.drop };
  });
} else {
  describe.skip("Postgres stores: PostgreSQL (set DATABASE_URL to run)", () => {
    it("runs the contract against PostgreSQL", () => {});
  });
}
