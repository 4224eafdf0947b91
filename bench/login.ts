import { formatCpuBreakdown, withCpuBreakdown } from "./lib/cpu.js";
import { formatLoad, runLoad } from "./lib/load.js";
import { describeBackends, startBenchStack } from "./lib/service.js";

/**
 * Login end to end over Connect (h2c, binary): BFF-like client -> service (its own process) ->
 * WeChat sandbox at 0 ms -> Postgres + Redis. Codes are minted up front so only logins are timed.
 * Usage: npm run bench:login (DATABASE_URL / REDIS_URL select the real servers).
 */
const LOGINS = Number(process.env.BENCH_LOGINS ?? 10_000);
/**
 * First logins of users the phases never see again, run before them and reported apart: a fresh
 * process spends about twice the CPU per login while V8 compiles the hot code and its heap, and
 * Postgres's new backends, settle in (measured: 1,504 µs of service CPU per login over a fresh
 * process's first 2,500 logins, 650–790 µs from then on).
 */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5_000);
/** BENCH_PHASES=first or returning runs one phase only (A/B runs of one setting). */
const PHASES = process.env.BENCH_PHASES ?? "first,returning";
const IN_FLIGHT = 64;

async function main() {
  const stack = await startBenchStack();
  console.log(
    `Login benchmark: ${describeBackends()}, sandbox at 0 ms, ${IN_FLIGHT} in flight, ${WARMUP} logins of warm-up, ${LOGINS} logins per phase`,
  );
  const phase = async (name: string, logins: number, openidOf: (i: number) => string | undefined) => {
    const codes = Array.from({ length: logins }, (_, i) => stack.issueCode(openidOf(i)));
    // The service's own CPU per login is what the machine's noise and Postgres's moods move least;
    // the rest of the breakdown shows whether the service or the shared machine was the limit.
    const result = await withCpuBreakdown(stack.service.pid, logins, () =>
      runLoad(logins, IN_FLIGHT, (i) => stack.login(codes[i] as string)),
    );
    console.log(formatLoad(name, result));
    console.log(`  ${formatCpuBreakdown(result.cpu, "login")}`);
  };
  const run = Date.now().toString(36);
  if (WARMUP > 0) await phase("warm-up: a fresh process's first logins", WARMUP, () => undefined);
  if (PHASES.includes("first")) await phase("first logins (a new user each)", LOGINS, () => undefined);
  if (PHASES.includes("returning"))
    await phase("returning users (1,000 users)", LOGINS, (i) => `returning-${run}-${i % 1000}`);
  await stack.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
