import postgres from "postgres";
import { openDatabase } from "../src/store/pg/database.js";
import { createPgSessionStore } from "../src/store/pg/session-store.js";
import { formatCpuBreakdown, withCpuBreakdown } from "./lib/cpu.js";
import { formatLoad, median, runLoad } from "./lib/load.js";
import { startOwnPostgres } from "./lib/own-servers.js";
import { BENCH_APP, startBenchStack } from "./lib/service.js";

/**
 * Login on an empty database against one holding 1,000,000 users and 3,000,000 sessions (each
 * with a refresh token; two of each user's three ended over a week ago), then the retention job deleting those
 * ended sessions. On a Postgres cluster of its own (PostgreSQL's server binaries), REDIS_URL as
 * the other benches:
 *
 *   npm run bench:scale
 */
const USERS = Number(process.env.BENCH_USERS ?? 1_000_000);
const SESSIONS_PER_USER = 3;
const LOGINS = Number(process.env.BENCH_LOGINS ?? 5_000);
const WARMUP = 3_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SHARED_BUFFERS = process.env.BENCH_SHARED_BUFFERS ?? "1GB";
/** Ended sessions the retention measurement deletes (of the 2,000,000). */
const PURGE = Number(process.env.BENCH_PURGE ?? 200_000);
const IN_FLIGHT = 64;

/** The users, their identities, sessions and refresh tokens, in Postgres, in chunks of 100,000 users. */
async function seed(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const chunk = 100_000;
  for (let from = 0; from < USERS; from += chunk) {
    const to = Math.min(USERS, from + chunk) - 1;
    await sql`
      with new_users as (
        insert into users (id, created_at)
        select gen_random_uuid(), now() - interval '60 days' from generate_series(${from}::int, ${to}::int)
        returning id
      ), numbered as (
        select id, ${from}::int - 1 + row_number() over () as n from new_users
      ), identities as (
        insert into wechat_identities (app_id, openid, user_id)
        select ${BENCH_APP.appId}, 'seed-' || n, id from numbered
      ), new_sessions as (
        -- Per user: one session ended by its absolute expiry 10 days ago, one revoked 8 days ago,
        -- and one live, started yesterday.
        insert into sessions (id, user_id, app_id, openid, created_at, idle_expires_at, absolute_expires_at, revoked_at)
        select gen_random_uuid(), id, ${BENCH_APP.appId}, 'seed-' || n, started,
          least(started + interval '7 days', started + interval '30 days'), started + interval '30 days',
          case when k = 1 then now() - interval '8 days' end
        from numbered, generate_series(0, ${SESSIONS_PER_USER - 1}) as k,
          lateral (select now() - (array[interval '40 days', interval '20 days', interval '1 day'])[k + 1] as started) s
        returning id, created_at
      )
      insert into refresh_tokens (token_hash, session_id, generation, created_at)
      select sha256(convert_to(id::text, 'UTF8')), id, 0, created_at from new_sessions`;
    process.stdout.write(`  seeded ${to + 1} users\n`);
  }
  // As a database that grew over months would be: vacuumed, analysed, and without the seeding's
  // gigabytes of WAL still to checkpoint under the measured logins.
  await sql`vacuum analyze`;
  await sql`checkpoint`;
  await sql.end();
}

async function main() {
  // A cluster of the bench's own, set up as a database host for this service would be: its
  // indexes fit in shared_buffers (the Debian default of 128 MB does not hold 3,000,000 sessions').
  const pg = await startOwnPostgres({ fsync: "on", shared_buffers: SHARED_BUFFERS });
  try {
    const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
    await admin.unsafe("create database seeded");
    for (let round = 1; round <= ROUNDS; round++) await admin.unsafe(`create database empty${round}`);
    await admin.end();
    console.log(
      `Scale benchmark: own Postgres (shared_buffers ${SHARED_BUFFERS}) + ${process.env.REDIS_URL ? "Redis" : "in-process store"}, ${IN_FLIGHT} in flight, ${LOGINS} logins a phase after ${WARMUP} of warm-up, ${ROUNDS} rounds of fresh service processes, empty and seeded alternating`,
    );
    // The schema first (a service start migrates), then the rows.
    const migrated = await startBenchStack({ env: { DATABASE_URL: pg.database("seeded") } });
    await migrated.stop();
    const seedStart = Date.now();
    console.log(`seeding ${USERS} users, ${USERS * SESSIONS_PER_USER} sessions...`);
    await seed(pg.database("seeded"));
    console.log(`  seeded in ${((Date.now() - seedStart) / 1000).toFixed(0)} s`);

    const random = () => Math.floor(Math.random() * USERS);
    const ratios: Array<{ first: number; returning: number }> = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const p50 = { empty: { first: 0, returning: 0 }, seeded: { first: 0, returning: 0 } };
      const order = round % 2 === 1 ? (["empty", "seeded"] as const) : (["seeded", "empty"] as const);
      for (const which of order) {
        const stack = await startBenchStack({
          env: { DATABASE_URL: pg.database(which === "empty" ? `empty${round}` : "seeded") },
        });
        const phase = async (name: string, openidOf: (i: number) => string | undefined) => {
          const codes = Array.from({ length: LOGINS }, (_, i) => stack.issueCode(openidOf(i)));
          const result = await withCpuBreakdown(stack.service.pid, LOGINS, () =>
            runLoad(LOGINS, IN_FLIGHT, (i) => stack.login(codes[i] as string)),
          );
          console.log(formatLoad(`round ${round}, ${which}: ${name}`, result));
          console.log(`  ${formatCpuBreakdown(result.cpu, "login")}`);
          return result.p50Ms;
        };
        await runLoad(WARMUP, IN_FLIGHT, () => stack.login(stack.issueCode()));
        p50[which].first = await phase("first logins", () => undefined);
        p50[which].returning = await phase(
          "returning users",
          which === "empty" ? (i) => `returning-${i % 1000}` : () => `seed-${random()}`,
        );
        await stack.stop();
      }
      ratios.push({
        first: p50.seeded.first / p50.empty.first,
        returning: p50.seeded.returning / p50.empty.returning,
      });
      console.log(
        `round ${round}: Login p50 seeded / empty: first logins ${ratios.at(-1)?.first.toFixed(2)}, returning users ${ratios.at(-1)?.returning.toFixed(2)}`,
      );
    }
    console.log(
      `median over ${ROUNDS} rounds, Login p50 seeded / empty: first logins ${median(ratios.map((r) => r.first)).toFixed(2)}, returning users ${median(ratios.map((r) => r.returning)).toFixed(2)} (goal <= 1.2)`,
    );

    // The retention job's statements, as the service runs them, over the ended sessions.
    const db = await openDatabase({
      databaseUrl: pg.database("seeded"),
      databasePoolSize: 2,
      dataDir: "",
      databaseStatementTimeoutMs: 5_000,
    });
    const store = createPgSessionStore(db.db, { maxAccessTokenTtlMs: 86_400_000 });
    const purgeStart = Date.now();
    const cutoff = new Date(Date.now() - 7 * 86_400_000);
    let purged = 0;
    for (let n = 1; n > 0 && purged < PURGE; purged += n) n = await store.purgeEndedSessions(cutoff, 1000);
    const seconds = (Date.now() - purgeStart) / 1000;
    console.log(
      `retention: deleted ${purged} of the ${USERS * 2} sessions ended before SESSION_RETENTION (7d) in ${seconds.toFixed(1)} s, ${(purged / seconds).toFixed(0)}/s`,
    );
    await db.close();
  } finally {
    pg.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
