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
