import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SessionStore, WechatIdentity } from "../../src/domain/ports.js";
import type { DatabaseHandle } from "../../src/store/pg/database.js";
import { users as usersTable, wechatIdentities } from "../../src/store/pg/schema.js";
import { createPgSessionStore } from "../../src/store/pg/session-store.js";
import { type OpenedDatabase, PG_DATABASES, REAL_DATABASE_URL } from "../helpers/backends.js";
import { uniqueName } from "../helpers/scratch-database.js";
import { newSession } from "../helpers/session-store-backends.js";

/**
 * What only the Postgres stores have (migrations, a login waiting on another transaction), on
 * embedded PGlite and on the real server. Their SessionStore, UserStore and SigningKeyStore run
 * the contracts shared with the in-memory stores.
 */
function pgStoresContract(name: string, open: () => Promise<OpenedDatabase>) {
  describe(`Postgres stores: ${name}`, () => {
    let handle: DatabaseHandle;
    let drop: () => Promise<void>;
    let sessions: SessionStore;

    beforeAll(async () => {
      ({ handle, drop } = await open());
      await handle.migrate();
      await handle.migrate(); // applying twice is a no-op
      sessions = createPgSessionStore(handle.db, { maxAccessTokenTtlMs: 3600_000 });
    });
    afterAll(async () => {
      await handle.close();
      await drop();
    });

    const login = (identity: WechatIdentity) => sessions.start(identity, newSession());

    describe("SessionStore.start on Postgres", () => {
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
    });
  });
}

for (const { name, open } of PG_DATABASES) pgStoresContract(name, open);
if (!REAL_DATABASE_URL) {
  describe.skip("Postgres stores: PostgreSQL (set DATABASE_URL to run)", () => {
    it("runs the contract against PostgreSQL", () => {});
  });
}
