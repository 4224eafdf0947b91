import { inject } from "vitest";
import type { RedisTopology } from "../../src/config.js";
import { type DatabaseHandle, openPglite, openPostgres } from "../../src/store/pg/database.js";
import { createScratchDatabase } from "./scratch-database.js";

/**
 * The real servers, when the environment names them (CI does: .ci/run). Suites that need them
 * report a visible skip otherwise; the embedded backends (PGlite, in-process store) always run.
 */
export const REAL_DATABASE_URL = process.env.DATABASE_URL || undefined;
export const REAL_REDIS_URL = process.env.REDIS_URL || undefined;

if (!REAL_DATABASE_URL || !REAL_REDIS_URL) {
  const missing = [!REAL_DATABASE_URL && "DATABASE_URL", !REAL_REDIS_URL && "REDIS_URL"]
    .filter(Boolean)
    .join(", ");
  console.warn(
    `[tests] ${missing} not set: suites against the real Postgres/Redis are skipped (embedded ones run)`,
  );
}

export interface OpenedDatabase {
  handle: DatabaseHandle;
  drop(): Promise<void>;
}

/**
 * Where suites of the Postgres stores run: embedded PGlite always, and the real server (a
 * scratch database per suite) when DATABASE_URL is set.
 */
export const PG_DATABASES: ReadonlyArray<{ name: string; open(): Promise<OpenedDatabase> }> = [
  {
    name: "PGlite (embedded)",
    open: async () => ({ handle: await openPglite("memory://"), drop: async () => {} }),
  },
  ...(REAL_DATABASE_URL
    ? [
        {
          name: "PostgreSQL",
          async open() {
            const database = await createScratchDatabase(REAL_DATABASE_URL as string);
            return { handle: openPostgres(database.url, { maxConnections: 4 }), drop: database.drop };
          },
        },
      ]
    : []),
];

/**
 * Where the Redis contract suites run: the real server (REDIS_URL) as one node, and the Cluster
 * and Sentinel set the run starts when redis-server is installed (test/setup/).
 */
export function redisTopologies(): Array<{ name: string; topology: RedisTopology }> {
  return [
    ...(REAL_REDIS_URL ? [{ name: "Redis", topology: { kind: "node" as const, url: REAL_REDIS_URL } }] : []),
    ...inject("redisTopologies"),
  ];
}
