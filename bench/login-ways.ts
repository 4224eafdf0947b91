import { formatCpuBreakdown, withCpuBreakdown } from "./lib/cpu.js";
import { formatLoad, runLoad } from "./lib/load.js";
import { describeBackends, startBenchStack } from "./lib/service.js";

/**
 * The three ways in, end to end over Connect in one run on one service process: the silent login
 * (wx.login code) for reference, the phone login (a wx.login code and a getPhoneNumber code: one
 * more WeChat call and a transaction instead of the one-statement login), and the password login
 * (argon2id at PASSWORD_HASH_* settings). Usage: npm run bench:login-ways.
 */
const LOGINS = Number(process.env.BENCH_LOGINS ?? 3000);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3000);
const PASSWORD_LOGINS = Number(process.env.BENCH_PASSWORD_LOGINS ?? 300);
const IN_FLIGHT = 64;
/** argon2 runs on libuv's 4 threads: more in flight only queues. */
const PASSWORD_IN_FLIGHT = 8;
const PASSWORD = "bench password, long enough";

async function main() {
  const stack = await startBenchStack();
  console.log(
    `Ways-in benchmark: ${describeBackends()}, sandbox at 0 ms, ${WARMUP} silent logins of warm-up, ${LOGINS} logins per phase (${IN_FLIGHT} in flight), ${PASSWORD_LOGINS} password logins (${PASSWORD_IN_FLIGHT} in flight)`,
  );
  const run = Date.now().toString(36);
  const phase = async (
    name: string,
    calls: number,
    inFlight: number,
    call: (i: number) => Promise<unknown>,
  ) => {
    const result = await withCpuBreakdown(stack.service.pid, calls, () => runLoad(calls, inFlight, call));
    console.log(formatLoad(name, result));
    console.log(`  ${formatCpuBreakdown(result.cpu, "login")}`);
    if (result.errors > 0) throw new Error(`${name}: ${result.firstError}`);
  };

  const silentCodes = Array.from({ length: WARMUP + LOGINS }, () => stack.issueCode());
  await phase("warm-up: silent logins", WARMUP, IN_FLIGHT, (i) => stack.login(silentCodes[i] as string));
  await phase("silent logins (a new user each)", LOGINS, IN_FLIGHT, (i) =>
    stack.login(silentCodes[WARMUP + i] as string),
  );

  const number = (i: number) => `+86 135${String(i).padStart(8, "0")}`;
  const fresh = Array.from({ length: LOGINS }, (_, i) =>
    stack.issuePhoneCodes(`phone-${run}-${i}`, number(i)),
  );
  await phase("phone logins (a new user each)", LOGINS, IN_FLIGHT, (i) => {
    const codes = fresh[i] as (typeof fresh)[0];
    return stack.loginWithPhone(codes.code, codes.phoneCode);
  });
  const returning = Array.from({ length: LOGINS }, (_, i) =>
    stack.issuePhoneCodes(`phone-${run}-${i % 1000}`, number(i % 1000)),
  );
  await phase("phone logins (returning, 1,000 users)", LOGINS, IN_FLIGHT, (i) => {
    const codes = returning[i] as (typeof returning)[0];
    return stack.loginWithPhone(codes.code, codes.phoneCode);
  });

  // Staff-like accounts: 50 users who each link a password (LinkIdentity), then log in with it.
  const accounts = 50;
  for (let i = 0; i < accounts; i++) {
    const login = await stack.login(stack.issueCode());
    await stack.linkPassword(login.tokens?.accessToken as string, `bench-${run}-${i}`, PASSWORD);
  }
  await phase("password logins (argon2id, 50 accounts)", PASSWORD_LOGINS, PASSWORD_IN_FLIGHT, (i) =>
    stack.loginWithPassword(`bench-${run}-${i % accounts}`, PASSWORD),
  );
  await stack.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
