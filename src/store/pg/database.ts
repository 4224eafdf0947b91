import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SQL } from "drizzle-orm";
import { type PgDatabase, PgDialect, type PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import type { Config } from "../../config.js";
import * as schema from "./schema.js";

/** Either driver behind one type: the stores are written once against it. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
/** A transaction of either driver (what `db.transaction` hands its callback). */
export type Transaction = Parameters<Parameters<Database["transaction"]>[0]>[0];

export interface DatabaseHandle {
  db: Database;
  /** "postgres" for a server, "pglite" for the embedded database. */
  kind: "postgres" | "pglite";
  /** For the start log: "postgres", or where the embedded database lives. */
  description: string;
  migrate(): Promise<void>;
  close(): Promise<void>;
}

/** The checked-in migrations (drizzle/), found from here whether running from src/ or dist/. */
export function migrationsFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "drizzle", "meta", "_journal.json"))) return join(dir, "drizzle");
    dir = dirname(dir);
  }
  throw new Error("drizzle/ migrations folder not found");
}

// Any constant works; it only has to be the same for every instance of the service.
const MIGRATION_LOCK_ID = 7_263_001;

export function openPostgres(
  url: string,
  options: { maxConnections: number; statementTimeoutMs?: number },
): DatabaseHandle {
  const client = postgres(url, {
    max: options.maxConnections,
    connect_timeout: 5,
    idle_timeout: 60,
    // Reconnect within a second of Postgres coming back. postgres.js's own backoff grows to 20 s
    // over an outage of a few seconds (its attempts count is shared by the pool), and the calls
    // that arrive meanwhile wait for that connection until their deadline.
    backoff: (attempts: number) => Math.min(0.05 * 2 ** attempts, 1) * (0.5 + Math.random() / 2),
    onnotice: () => {},
    // Postgres ends any statement that runs (or waits on a lock) longer: it is not carried out
    // behind the back of a caller who gave up, and the call answers UNAVAILABLE.
    ...(options.statementTimeoutMs ? { connection: { statement_timeout: options.statementTimeoutMs } } : {}),
  });
  return {
    db: drizzlePostgres(client, { schema }),
    kind: "postgres",
    description: "postgres",
    async migrate() {
      // Migrations run on their own single connection, under an advisory lock, so instances
      // starting together apply them once.
      const migrator = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
      try {
        await migrator`select pg_advisory_lock(${MIGRATION_LOCK_ID})`;
        await migratePostgres(drizzlePostgres(migrator), { migrationsFolder: migrationsFolder() });
      } finally {
        await migrator.end({ timeout: 5 });
      }
    },
    close: () => client.end({ timeout: 5 }),
  };
}

/**
 * A raw statement both drivers prepare once and run with named values (`sql.placeholder`). For a
 * statement as large as the login's, Postgres spends about twice as long planning it as running
 * it, so the hot statements are prepared (docs/benchmarks.md: about a third of the server CPU).
 */
export function preparedStatement<Row>(db: Database, name: string, query: SQL) {
  const compiled = new PgDialect().sqlToQuery(query);
  const prepared = db._.session.prepareQuery(compiled, undefined, name, false);
  /** `inTransaction`: run it in that transaction instead of on its own. */
  return async (values: Record<string, unknown>, inTransaction?: Pick<Database, "_">): Promise<Row[]> => {
    const statement = inTransaction
      ? inTransaction._.session.prepareQuery(compiled, undefined, name, false)
      : prepared;
    return rowsOf<Row>(await statement.execute(values));
  };
}

/** The rows of a raw statement's result: postgres.js returns them as the result, PGlite in `rows`. */
export function rowsOf<Row>(result: unknown): Row[] {
  return (Array.isArray(result) ? result : (result as { rows: Row[] }).rows) as Row[];
}

/**
 * Embedded Postgres (WASM) in `dataDir`, or in memory when dataDir is "memory://". Its modules are
 * loaded only here, so a service on a Postgres server does not carry them (16 MB of memory).
 */
export async function openPglite(dataDir: string): Promise<DatabaseHandle> {
  const [{ PGlite }, { drizzle: drizzlePglite }, { migrate: migratePglite }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("drizzle-orm/pglite"),
    import("drizzle-orm/pglite/migrator"),
  ]);
  if (dataDir !== "memory://") await mkdir(dataDir, { recursive: true });
  const client = new PGlite(dataDir === "memory://" ? undefined : dataDir);
  await client.waitReady;
  const db = drizzlePglite(client, { schema });
  return {
    db,
    kind: "pglite",
    description: dataDir === "memory://" ? "embedded PGlite in memory" : `embedded PGlite in ${dataDir}`,
    migrate: () => migratePglite(db, { migrationsFolder: migrationsFolder() }),
    close: () => client.close(),
  };
}

/**
 * The database the configuration names, for every entry point (the service, `npm run migrate`,
 * `npm run keys:rotate`): DATABASE_URL, or the embedded database in DATA_DIR (kept in memory
 * with DATA_DIR=memory://).
 */
export function openDatabase(
  config: Pick<Config, "databaseUrl" | "databasePoolSize" | "dataDir" | "databaseStatementTimeoutMs">,
  options: { maxConnections?: number } = {},
): Promise<DatabaseHandle> {
  if (config.databaseUrl) {
    return Promise.resolve(
      openPostgres(config.databaseUrl, {
        maxConnections: options.maxConnections ?? config.databasePoolSize,
        statementTimeoutMs: config.databaseStatementTimeoutMs,
      }),
    );
  }
  return openPglite(config.dataDir === "memory://" ? "memory://" : join(config.dataDir, "pglite"));
}
