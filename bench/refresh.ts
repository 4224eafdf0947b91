import { formatLoad, runLoad } from "./lib/load.js";
import { describeBackends, startBenchStack } from "./lib/service.js";

/**
 * Refresh end to end over Connect (h2c, binary): sessions are logged in first, then each of the
 * 64 workers keeps refreshing its own sessions, always with the newest refresh token (rotation).
 * Usage: npm run bench:refresh (DATABASE_URL / REDIS_URL select the real servers).
 */
const REFRESHES = Number(process.env.BENCH_REFRESHES ?? 10_000);
const SESSIONS = 1_000;
/** Refreshes before the timed run, reported apart: a fresh process is slower while V8 compiles. */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3_000);
const IN_FLIGHT = 64;

async function main() {
  const stack = await startBenchStack();
  console.log(
    `Refresh benchmark: ${describeBackends()}, ${IN_FLIGHT} in flight, ${SESSIONS} sessions, ${WARMUP} refreshes of warm-up, ${REFRESHES} refreshes`,
  );
  const newest: string[] = [];
  await runLoad(SESSIONS, IN_FLIGHT, async (i) => {
    newest[i] = (await stack.login(stack.issueCode())).tokens?.refreshToken ?? "";
  });
  // Call i refreshes session i % SESSIONS; no two calls in flight share a session.
  const refreshes = (calls: number) =>
    runLoad(calls, IN_FLIGHT, async (i) => {
      const session = i % SESSIONS;
      newest[session] = (await stack.refresh(newest[session] as string)).tokens?.refreshToken ?? "";
    });
  if (WARMUP > 0)
    console.log(formatLoad("warm-up: a fresh process's first refreshes", await refreshes(WARMUP)));
  console.log(formatLoad("refreshes (rotation, new access token)", await refreshes(REFRESHES)));
  await stack.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
