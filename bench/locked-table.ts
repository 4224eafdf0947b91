import { ConnectError } from "@connectrpc/connect";
import postgres from "postgres";
import { createScratchDatabase } from "../test/helpers/scratch-database.js";
import { residentMiB } from "./lib/cpu.js";
import { describeBackends, startBenchStack } from "./lib/service.js";

/**
 * A table locked under load, as an operator's bad day would have it: Logins arrive at a steady
 * rate while `sessions` is locked, and the service's memory (RSS) is sampled every second.
 * Prints what callers saw and how RSS moved before, during and after the lock.
 *
 *   DATABASE_URL=postgres://... npm run build && node dist/bench/locked-table.js
 *   (BENCH_RATE calls a second, BENCH_LOCK_S seconds of lock; defaults 300 and 40)
 */
const RATE = Number(process.env.BENCH_RATE ?? 300);
const LOCK_S = Number(process.env.BENCH_LOCK_S ?? 40);

async function main() {
  if (!process.env.DATABASE_URL) throw new Error("needs DATABASE_URL: the lock is taken on a real Postgres");
  const database = await createScratchDatabase(process.env.DATABASE_URL, "identity_lock");
  const stack = await startBenchStack({ env: { DATABASE_URL: database.url } });
  const pid = stack.service.pid;
  console.log(`Locked table: ${describeBackends()}, Logins at ${RATE}/s, sessions locked for ${LOCK_S} s`);
  for (let i = 0; i < 500; i++) await stack.login(stack.issueCode()); // warm

  const outcomes = new Map<string, number>();
  const tally = (what: string) => {
    outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
  };
  let stopLoad = false;
  const inFlight = new Set<Promise<void>>();
  const load = setInterval(() => {
    if (stopLoad) return;
    for (let i = 0; i < RATE / 10; i++) {
      const call: Promise<void> = stack
        .login(stack.issueCode())
        .then(
          () => tally("ok"),
          (err: unknown) => tally(/HTTP (\d+)/.exec(ConnectError.from(err).message)?.[1] ?? "error"),
        )
        .finally(() => inFlight.delete(call));
      inFlight.add(call);
    }
  }, 100);

  const samples: number[] = [];
  const sample = setInterval(() => samples.push(residentMiB(pid)), 1000);
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const before = residentMiB(pid);
  const locker = postgres(database.url, { max: 1, onnotice: () => {} });
  const locked = locker.begin(async (tx) => {
    await tx`lock table sessions in access exclusive mode`;
    await new Promise((resolve) => setTimeout(resolve, LOCK_S * 1000));
  });
  await locked;
  const during = Math.max(...samples.slice(5));
  await new Promise((resolve) => setTimeout(resolve, 10_000));
  stopLoad = true;
  clearInterval(load);
  await Promise.allSettled([...inFlight]);
  clearInterval(sample);
  const after = residentMiB(pid);
  console.log(
    `RSS: before the lock ${before.toFixed(0)} MB, highest during it ${during.toFixed(0)} MB, 10 s after ${after.toFixed(0)} MB`,
  );
  console.log(`answers: ${[...outcomes].map(([what, n]) => `${what} ${n}`).join(", ")}`);
  await locker.end();
  await stack.stop();
  await database.drop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
