import { randomUUID } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { PgliteDatabase } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SessionStore, WechatIdentity } from "../../src/domain/ports.js";
import { type DatabaseHandle, migrationsFolder, rowsOf } from "../../src/store/pg/database.js";
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

    it("migration 0007 leaves a phone number bound to several users with the oldest, and audits the others", async () => {
      const fresh = await open();
      try {
        const folder = await migrationsBefore("0007_");
        await migrateFrom(fresh.handle, folder.path);
        await folder.remove();
        const [older, newer, alone] = [randomUUID(), randomUUID(), randomUUID()];
        await fresh.handle.db.execute(sql`
          insert into users (id, phone_number, created_at) values
            (${newer}::uuid, '+86 13900000001', now()),
            (${older}::uuid, '+86 13900000001', now() - interval '1 day'),
            (${alone}::uuid, '+86 13900000002', now())`);
        await fresh.handle.migrate();
        const rows = rowsOf<{ id: string; phone_number: string | null }>(
          await fresh.handle.db.execute(sql`select id, phone_number from users`),
        );
        const phoneOf = (id: string) => rows.find((r) => r.id === id)?.phone_number;
        expect([phoneOf(older), phoneOf(newer), phoneOf(alone)]).toEqual([
          "+86 13900000001",
          null,
          "+86 13900000002",
        ]);
        const audit = rowsOf<{ subject_user_id: string; type: string; details: { kept_by: string } }>(
          await fresh.handle.db.execute(sql`select subject_user_id, type, details from audit_events`),
        );
        expect(audit).toEqual([
          {
            subject_user_id: newer,
            type: "identity.unlinked",
            details: expect.objectContaining({ kept_by: older }),
          },
        ]);
        // From now on the database itself refuses a second holder.
        await expect(
          fresh.handle.db.execute(
            sql`update users set phone_number = '+86 13900000001' where id = ${alone}::uuid`,
          ),
        ).rejects.toThrow();
      } finally {
        await fresh.handle.close();
        await fresh.drop();
      }
    });

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

/** A copy of drizzle/ whose journal stops before the migration whose tag starts with `tag`. */
async function migrationsBefore(tag: string) {
  const path = await mkdtemp(join(tmpdir(), "migrations-"));
  await cp(migrationsFolder(), path, { recursive: true });
  const journalPath = join(path, "meta", "_journal.json");
  const journal = JSON.parse(await readFile(journalPath, "utf8")) as { entries: Array<{ tag: string }> };
  const at = journal.entries.findIndex((e) => e.tag.startsWith(tag));
  journal.entries = journal.entries.slice(0, at);
  await writeFile(journalPath, JSON.stringify(journal));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Applies the migrations in `folder` with the driver's own migrator. */
async function migrateFrom(handle: DatabaseHandle, folder: string) {
  const db = handle.db as never;
  if (handle.db instanceof PgliteDatabase) await migratePglite(db, { migrationsFolder: folder });
  else await migratePostgres(db, { migrationsFolder: folder });
}

for (const { name, open } of PG_DATABASES) pgStoresContract(name, open);
if (!REAL_DATABASE_URL) {
  describe.skip("Postgres stores: PostgreSQL (set DATABASE_URL to run)", () => {
    it("runs the contract against PostgreSQL", () => {});
  });
}
