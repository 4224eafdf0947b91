import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import postgres from "postgres";
import {
  LoginRequestSchema,
  VerifyTokenRequestSchema,
  VerifyTokenResponseSchema,
} from "../src/gen/identity/v1/identity_pb.js";
import { createRawConnectClient } from "./lib/connect-raw-client.js";
import { formatCpuBreakdown, withCpuBreakdown, withCpuPerCall } from "./lib/cpu.js";
import { createRawGrpcCaller } from "./lib/grpc-raw-client.js";
import { ensureH2load, grpcFrame, h2loadGrpc } from "./lib/h2load.js";
import { formatLoad, type LoadResult, median, runLoad } from "./lib/load.js";
import {
  BENCH_APP,
  describeBackends,
  freePort,
  PINNED,
  pinToServerCpu,
  type ServerProcess,
  startBenchStack,
  startNodeServer,
} from "./lib/service.js";

/**
 * VerifyToken over gRPC against a bare grpc-js server answering a fixed reply, on this machine in
 * this run. Usage: npm run bench:verify (DATABASE_URL / REDIS_URL select the real servers).
 */
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 50_000);
/** Pairs of runs, each on fresh processes of both servers, the order alternating. */
const RUNS = Number(process.env.BENCH_RUNS ?? 21);
const WARMUP = 10_000;
/**
 * What each fresh service instance serves before the load, as a production instance serves the
 * BFF next to VerifyToken: BENCH_INSTANCE_TRAFFIC=connect-logins (the default), connect-verify,
 * grpc-logins or none; BENCH_INSTANCE_CALLS calls of it (200).
 */
const INSTANCE_TRAFFIC = process.env.BENCH_INSTANCE_TRAFFIC ?? "connect-logins";
const INSTANCE_CALLS = Number(process.env.BENCH_INSTANCE_CALLS ?? 200);
const COLD_TOKENS = Number(process.env.BENCH_COLD_TOKENS ?? 20_000);
/**
 * BENCH_TOKEN_PERMISSIONS=n: the warm token's user holds a role granting n permissions, so the
 * answer carries them (needs DATABASE_URL: the role is given with SQL).
 */
const PERMISSIONS = Number(process.env.BENCH_TOKEN_PERMISSIONS ?? 0);
const PATH = "/identity.v1.IdentityService/VerifyToken";
const LOGIN_PATH = "/identity.v1.IdentityService/Login";

async function startBare(port: number): Promise<ServerProcess> {
  const script = join(dirname(fileURLToPath(import.meta.url)), "bare-grpc-server.js");
  const bare = await startNodeServer(script, [String(port)], {}, "bare server ready");
  pinToServerCpu(bare.pid);
  return bare;
}

const failOnErrors = (result: LoadResult) => {
  if (result.errors > 0) throw new Error(`the instance's first calls failed: ${result.firstError}`);
};

/** The calls an instance serves before the load (BENCH_INSTANCE_TRAFFIC). */
async function serveFirst(stack: BenchStack, started: Instance, token: string): Promise<void> {
  const instance = started.service;
  switch (INSTANCE_TRAFFIC) {
    case "none":
      return;
    case "connect-logins":
      failOnErrors(await runLoad(INSTANCE_CALLS, 16, () => started.login(stack.issueCode())));
      return;
    case "connect-verify": {
      const connect = createRawConnectClient(`http://127.0.0.1:${instance.httpPort}`);
      const body = toBinary(
        VerifyTokenRequestSchema,
        create(VerifyTokenRequestSchema, { accessToken: token }),
      );
      failOnErrors(
        await runLoad(INSTANCE_CALLS, 16, () => connect.call(PATH, body, VerifyTokenResponseSchema)),
      );
      return connect.close();
    }
    case "grpc-logins": {
      const caller = createRawGrpcCaller(`127.0.0.1:${instance.grpcPort}`);
      const login = () => create(LoginRequestSchema, { appId: BENCH_APP.appId, code: stack.issueCode() });
      failOnErrors(
        await runLoad(INSTANCE_CALLS, 16, () =>
          caller.call(LOGIN_PATH, grpcFrame(toBinary(LoginRequestSchema, login()))),
        ),
      );
      return caller.close();
    }
    default:
      throw new Error(
        `BENCH_INSTANCE_TRAFFIC=${INSTANCE_TRAFFIC}: not connect-logins, connect-verify, grpc-logins or none`,
      );
  }
}

type BenchStack = Awaited<ReturnType<typeof startBenchStack>>;
type Instance = Awaited<ReturnType<BenchStack["startInstance"]>>;

/** An access token whose user's role grants `count` permissions (given with SQL, then a refresh). */
async function tokenWithPermissions(stack: BenchStack, count: number): Promise<string> {
  if (!stack.databaseUrl) throw new Error("BENCH_TOKEN_PERMISSIONS needs DATABASE_URL");
  const login = await stack.login(stack.issueCode());
  const sql = postgres(stack.databaseUrl, { max: 1, onnotice: () => {} });
  const permissions = Array.from({ length: count }, (_, i) => `order:read:${i}`);
  await sql`insert into roles (name, permissions) values ('bench', ${permissions})`;
  await sql`update users set roles = '{bench}' where id = ${login.user?.id as string}::uuid`;
  await sql.end();
  const refreshed = await stack.refresh(login.tokens?.refreshToken as string);
  return refreshed.tokens?.accessToken as string;
}

const frameOf = (token: string) =>
  grpcFrame(toBinary(VerifyTokenRequestSchema, create(VerifyTokenRequestSchema, { accessToken: token })));

async function main() {
  if (!ensureH2load()) throw new Error("h2load is not available (apt-get install nghttp2-client)");
  if (PERMISSIONS > 0 && !process.env.DATABASE_URL) {
    throw new Error("BENCH_TOKEN_PERMISSIONS needs DATABASE_URL: the role is given with SQL");
  }
  const stack = await startBenchStack();
  const service = stack.service;
  pinToServerCpu(service.pid);
  const login = async () => (await stack.login(stack.issueCode())).tokens?.accessToken ?? "";
  console.log(
    `VerifyToken benchmark: ${describeBackends()}, ${REQUESTS} requests per h2load run (-c 4 -m 32), each instance serves ${INSTANCE_CALLS} ${INSTANCE_TRAFFIC} first${PINNED ? ", servers on CPU 1, h2load on CPU 0" : ""}, warm token with ${PERMISSIONS} permissions`,
  );

  const token = PERMISSIONS > 0 ? await tokenWithPermissions(stack, PERMISSIONS) : await login();
  const hot = frameOf(token);
  const urlOf = (port: number) => `http://127.0.0.1:${port}${PATH}`;
  // Server CPU per request (µs) next to req/s.
  const measure = (url: string, pid: number) =>
    withCpuPerCall(pid, REQUESTS, () => h2loadGrpc(url, hot, REQUESTS, 4, 32));
  // Every pair runs on two fresh processes. Two processes of the very same server differ by up to
  // 2x here, and each keeps its speed for its whole life (an A/A test of the bare server on one
  // pair of processes gave a median ratio of 0.82 over 10 runs), so a figure from one pair of
  // processes measures that draw more than the servers.
  const runs: Array<{ bare: number; ours: number; bareCpu: number; oursCpu: number }> = [];
  for (let i = 0; i < RUNS; i++) {
    const barePort = await freePort();
    const bare = await startBare(barePort);
    const started = await stack.startInstance();
    const instance = started.service;
    pinToServerCpu(instance.pid);
    await serveFirst(stack, started, token);
    started.close();
    const baseline = urlOf(barePort);
    const ours = urlOf(instance.grpcPort);
    h2loadGrpc(baseline, hot, WARMUP, 4, 32);
    h2loadGrpc(ours, hot, WARMUP, 4, 32);
    // Each server goes first in every other pair, so that neither profits from its place.
    let b: Awaited<ReturnType<typeof measure>>;
    let o: Awaited<ReturnType<typeof measure>>;
    if (i % 2 === 0) {
      b = await measure(baseline, bare.pid);
      o = await measure(ours, instance.pid);
    } else {
      o = await measure(ours, instance.pid);
      b = await measure(baseline, bare.pid);
    }
    await Promise.all([bare.stop(), instance.stop()]);
    if (o.failed > 0 || b.failed > 0) throw new Error("h2load saw failed requests");
    runs.push({ bare: b.perSecond, ours: o.perSecond, bareCpu: b.cpuUs, oursCpu: o.cpuUs });
    console.log(
      `  pair ${i + 1}: bare grpc-js ${b.perSecond.toFixed(0)} req/s (${b.cpuUs.toFixed(1)} µs CPU/req), VerifyToken (one token) ${o.perSecond.toFixed(0)} req/s (${o.cpuUs.toFixed(1)} µs CPU/req), ratio ${(o.perSecond / b.perSecond).toFixed(2)}`,
    );
  }
  const bareMedian = median(runs.map((r) => r.bare));
  const oursMedian = median(runs.map((r) => r.ours));
  console.log(
    `median over ${RUNS} fresh pairs: bare ${bareMedian.toFixed(0)} req/s, VerifyToken warm ${oursMedian.toFixed(0)} req/s, ratio of the medians ${(oursMedian / bareMedian).toFixed(2)}, median of the pairs' ratios ${median(runs.map((r) => r.ours / r.bare)).toFixed(2)} (goal >= 0.90)`,
  );
  console.log(
    `server CPU per request, median: bare ${median(runs.map((r) => r.bareCpu)).toFixed(1)} µs, VerifyToken warm ${median(runs.map((r) => r.oursCpu)).toFixed(1)} µs`,
  );

  // Percentiles with our own caller (h2load reports no percentiles).
  const caller = createRawGrpcCaller(`127.0.0.1:${service.grpcPort}`);
  const warm = await withCpuBreakdown(service.pid, 50_000, () =>
    runLoad(50_000, 64, () => caller.call(PATH, hot)),
  );
  console.log(formatLoad("warm, one token, 64 in flight", warm));
  console.log(`  ${formatCpuBreakdown(warm.cpu, "call")}`);

  process.stdout.write(`minting ${COLD_TOKENS} distinct tokens by logging in...\n`);
  const tokens: Buffer[] = [];
  const mint = await runLoad(COLD_TOKENS, 64, async () => {
    tokens.push(frameOf(await login()));
  });
  console.log(formatLoad("(Login over Connect while minting)", mint));
  const cold = await withCpuBreakdown(service.pid, tokens.length, () =>
    runLoad(tokens.length, 64, (i) => caller.call(PATH, tokens[i] as Buffer)),
  );
  console.log(formatLoad("cold, distinct tokens, 64 in flight", cold));
  console.log(`  ${formatCpuBreakdown(cold.cpu, "call")}`);
  caller.close();
  await stack.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
