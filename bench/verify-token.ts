import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { VerifyTokenRequestSchema } from "../src/gen/identity/v1/identity_pb.js";
import { createRawGrpcCaller } from "./lib/grpc-raw-client.js";
import { ensureH2load, grpcFrame, h2loadGrpc } from "./lib/h2load.js";
import { formatLoad, runLoad } from "./lib/load.js";
import {
  describeBackends,
  freePort,
  PINNED,
  pinToServerCpu,
  processCpuMs,
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
const LOGINS_PER_INSTANCE = Number(process.env.BENCH_LOGINS_PER_INSTANCE ?? 200);
const COLD_TOKENS = Number(process.env.BENCH_COLD_TOKENS ?? 20_000);
const PATH = "/identity.v1.IdentityService/VerifyToken";

async function startBare(port: number): Promise<ServerProcess> {
  const script = join(dirname(fileURLToPath(import.meta.url)), "bare-grpc-server.js");
  const bare = await startNodeServer(script, [String(port)], {}, "bare server ready");
  pinToServerCpu(bare.pid);
  return bare;
}

const frameOf = (token: string) =>
  grpcFrame(toBinary(VerifyTokenRequestSchema, create(VerifyTokenRequestSchema, { accessToken: token })));

async function main() {
  if (!ensureH2load()) throw new Error("h2load is not available (apt-get install nghttp2-client)");
  const stack = await startBenchStack();
  const service = stack.service;
  pinToServerCpu(service.pid);
  const login = async () => (await stack.login(stack.issueCode())).tokens?.accessToken ?? "";
  console.log(
    `VerifyToken benchmark: ${describeBackends()}, ${REQUESTS} requests per h2load run (-c 4 -m 32)${PINNED ? ", servers on CPU 1, h2load on CPU 0" : ""}`,
  );

  const token = await login();
  const hot = frameOf(token);
  const urlOf = (port: number) => `http://127.0.0.1:${port}${PATH}`;
  // Server CPU per request (µs) next to req/s.
  const measure = (url: string, pid: number) => {
    const before = processCpuMs(pid);
    const result = h2loadGrpc(url, hot, REQUESTS, 4, 32);
    const after = processCpuMs(pid);
    const cpuUs =
      before === undefined || after === undefined ? Number.NaN : ((after - before) * 1000) / REQUESTS;
    return { ...result, cpuUs };
  };
  // Every pair runs on two fresh processes. Two processes of the very same server differ by up to
  // 2x here, and each keeps its speed for its whole life (an A/A test of the bare server on one
  // pair of processes gave a median ratio of 0.82 over 10 runs), so a figure from one pair of
  // processes measures that draw more than the servers.
  const runs: Array<{ bare: number; ours: number; bareCpu: number; oursCpu: number }> = [];
  for (let i = 0; i < RUNS; i++) {
    const barePort = await freePort();
    const bare = await startBare(barePort);
    const { service: instance, login: loginThere, close } = await stack.startInstance();
    pinToServerCpu(instance.pid);
    // Like a production instance, it serves the BFF's Logins next to VerifyToken.
    await runLoad(LOGINS_PER_INSTANCE, 16, () => loginThere(stack.issueCode()));
    close();
    const baseline = urlOf(barePort);
    const ours = urlOf(instance.grpcPort);
    h2loadGrpc(baseline, hot, WARMUP, 4, 32);
    h2loadGrpc(ours, hot, WARMUP, 4, 32);
    // Each server goes first in every other pair, so that neither profits from its place.
    let b: ReturnType<typeof measure>;
    let o: ReturnType<typeof measure>;
    if (i % 2 === 0) {
      b = measure(baseline, bare.pid);
      o = measure(ours, instance.pid);
    } else {
      o = measure(ours, instance.pid);
      b = measure(baseline, bare.pid);
    }
    await Promise.all([bare.stop(), instance.stop()]);
    if (o.failed > 0 || b.failed > 0) throw new Error("h2load saw failed requests");
    runs.push({ bare: b.perSecond, ours: o.perSecond, bareCpu: b.cpuUs, oursCpu: o.cpuUs });
    console.log(
      `  pair ${i + 1}: bare grpc-js ${b.perSecond.toFixed(0)} req/s (${b.cpuUs.toFixed(1)} µs CPU/req), VerifyToken (one token) ${o.perSecond.toFixed(0)} req/s (${o.cpuUs.toFixed(1)} µs CPU/req), ratio ${(o.perSecond / b.perSecond).toFixed(2)}`,
    );
  }
  const median = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const mid = sorted.length / 2;
    return sorted.length % 2
      ? (sorted[Math.floor(mid)] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  };
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
  console.log(
    formatLoad("warm, one token, 64 in flight", await runLoad(50_000, 64, () => caller.call(PATH, hot))),
  );

  process.stdout.write(`minting ${COLD_TOKENS} distinct tokens by logging in...\n`);
  const tokens: Buffer[] = [];
  const mint = await runLoad(COLD_TOKENS, 64, async () => {
    tokens.push(frameOf(await login()));
  });
  console.log(formatLoad("(Login over Connect while minting)", mint));
  console.log(
    formatLoad(
      "cold, distinct tokens, 64 in flight",
      await runLoad(tokens.length, 64, (i) => caller.call(PATH, tokens[i] as Buffer)),
    ),
  );
  caller.close();
  await stack.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
