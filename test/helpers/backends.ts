import { randomBytes } from "node:crypto";
import postgres from "postgres";

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

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString("hex")}`;
}

/** A fresh database on the real server for one test file, so files can run in parallel. */
export async function createTestDatabase(serverUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = uniqueName("identity_test");
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const again = postgres(serverUrl, { max: 1, onnotice: () => {} });
      await again.unsafe(`drop database if exists "${name}" with (force)`);
      await again.end();
    },
  };
}
