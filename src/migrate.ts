import { parseConfig, readEnv } from "./config.js";
import { openDatabase } from "./store/pg/database.js";

/** `npm run migrate`: applies the checked-in migrations to DATABASE_URL (or the embedded database). */
const config = parseConfig(readEnv());
const database = await openDatabase(config, { maxConnections: 1 });
try {
  await database.migrate();
  process.stdout.write(`migrations applied (${database.kind})\n`);
} finally {
  await database.close();
}
