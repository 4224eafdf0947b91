import { join } from "node:path";
import { parseConfig, readEnv } from "./config.js";
import { openPglite, openPostgres } from "./store/pg/database.js";

/** `npm run migrate`: applies the checked-in migrations to DATABASE_URL (or the embedded database). */
const config = parseConfig(readEnv());
const database = config.databaseUrl
  ? openPostgres(config.databaseUrl, { maxConnections: 1 })
  : await openPglite(join(config.dataDir, "pglite"));
try {
  await database.migrate();
  process.stdout.write(`migrations applied (${database.kind})\n`);
} finally {
  await database.close();
}
