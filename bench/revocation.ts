import { create, toBinary } from "@bufbuild/protobuf";
import postgres from "postgres";
import { VerifyTokenRequestSchema } from "../src/gen/identity/v1/identity_pb.js";
import { openPostgres } from "../src/store/pg/database.js";
import { createScratchDatabase } from "../test/helpers/scratch-database.js";
import { withCpuPerCall } from "./lib/cpu.js";
import { createRawGrpcCaller } from "./lib/grpc-raw-client.js";
import { ensureH2load, grpcFrame, h2loadGrpc } from "./lib/h2load.js";
import { median, percentile } from "./lib/load.js";
import { PINNED, pinToServerCpu, startBenchStack } from "./lib/service.js";

/**
 * Revocation across instances, with the real Postgres and Redis (DATABASE_URL, REDIS_URL):
 *  1. propagation: a Logout on instance A, then VerifyToken on instance B polled until it
 *     refuses; p50/p99 of the time from A's answer (and from the request) to B's refusal;
 *  2. VerifyToken warm throughput on an instance whose revocation mirror holds 100,000 sessions,
 *     against one holding none, in alternating h2load pairs.
 * Usage: npm run bench:revocation
 */
const LOGOUTS = Number(process.env.BENCH_LOGOUTS ?? 500);
const REVOKED = Number(process.env.BENCH_REVOKED ?? 100_000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 50_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const PATH = "/identity.v1.IdentityService/VerifyToken";
const DATABASE_URL = process.env.DATABASE_URL;

const frameOf = (token: string) =>
  grpcFrame(toBinary(VerifyTokenRequestSchema, create(VerifyTokenRequestSchema, { accessToken: token })));

async function propagation() {
  const stack = await startBenchStack({ instances: 2 });
  const [a, b] = stack.instances as [(typeof stack.instances)[0], (typeof stack.instances)[0]];
  const onB = createRawGrpcCaller(`127.0.0.1:${b.service.grpcPort}`, 1);
  const fromAnswer: number[] = [];
  const fromRequest: number[] = [];
  for (let i = 0; i < LOGOUTS; i++) {
    const token = (await a.login(stack.issueCode())).tokens?.accessToken as string;
    const frame = frameOf(token);
    await onB.call(PATH, frame); // valid, and now cached on B
    const requested = performance.now();
    await a.logout(token);
    const answered = performance.now();
    for (;;) {
      const refused = await onB.call(PATH, frame).then(
        () => false,
        (err: Error) => {
          if (!/grpc-status 16/.test(err.message)) throw err;
          return true;
        },
      );
      if (refused) break;
    }
    const done = performance.now();
    fromAnswer.push(done - answered);
    fromRequest.push(done - requested);
  }
  onB.close();
  await stack.stop();
  const report = (name: string, xs: number[]) => {
    const sorted = [...xs].sort((x, y) => x - y);
    return `${name}: p50 ${percentile(sorted, 0.5).toFixed(2)} ms, p99 ${percentile(sorted, 0.99).toFixed(2)} ms, max ${(sorted.at(-1) as number).toFixed(2)} ms`;
  };
  console.log(`propagation over ${LOGOUTS} logouts on A, B polled with VerifyToken (goal p99 <= 100 ms)`);
  console.log(`  ${report("from A's Logout answer to B's refusal", fromAnswer)}`);
  console.log(`  ${report("from the Logout request to B's refusal ", fromRequest)}`);
}

/** A fresh database, migrated, with `revoked` revoked sessions whose tokens could still be live. */
async function databaseWithRevocations(serverUrl: string, revoked: number) {
  const database = await createScratchDatabase(serverUrl, "identity_bench_mirror");
  const handle = openPostgres(database.url, { maxConnections: 1 });
  await handle.migrate();
  await handle.close();
  const db = postgres(database.url, { max: 1, onnotice: () => {} });
  if (revoked > 0) {
    const [user] = await db`insert into users default values returning id`;
    await db`
      insert into sessions (id, user_id, app_id, openid, created_at, idle_expires_at, absolute_expires_at,
                            revoked_at, revoked_reason)
      select gen_random_uuid(), ${user?.id}, 'wxbench000000001', 'o' || n, now(), now() + interval '1 day',
             now() + interval '1 day', now(), 'bench'
      from generate_series(1, ${revoked}) as n`;
  }
  await db.end();
  return database;
}

async function verifyWithLargeMirror(serverUrl: string) {
  if (!ensureH2load()) throw new Error("h2load is not available (apt-get install nghttp2-client)");
  const empty = await databaseWithRevocations(serverUrl, 0);
  const full = await databaseWithRevocations(serverUrl, REVOKED);
  const none = await startBenchStack({ env: { DATABASE_URL: empty.url } });
  const many = await startBenchStack({ env: { DATABASE_URL: full.url } });
  console.log(
    `VerifyToken warm, one token, h2load -c 4 -m 32, ${REQUESTS} requests per run, ${RUNS} alternating pairs${PINNED ? ", servers on CPU 1" : ""}`,
  );
  console.log(
    `  mirrors at start: ${none.service.started.revokedSessions} and ${many.service.started.revokedSessions} revoked sessions`,
  );
  const targets = await Promise.all(
    [none, many].map(async (stack) => {
      pinToServerCpu(stack.service.pid);
      const token = (await stack.login(stack.issueCode())).tokens?.accessToken as string;
      return {
        url: `http://127.0.0.1:${stack.service.grpcPort}${PATH}`,
        frame: frameOf(token),
        pid: stack.service.pid,
      };
    }),
  );
  const measure = async (t: (typeof targets)[0]) => {
    const result = await withCpuPerCall(t.pid, REQUESTS, () => h2loadGrpc(t.url, t.frame, REQUESTS, 4, 32));
    if (result.failed > 0) throw new Error("h2load saw failed requests");
    return result;
  };
  for (const t of targets) h2loadGrpc(t.url, t.frame, 20_000, 4, 32); // warm-up
  const pairs: Array<{ ratio: number; cpuRatio: number }> = [];
  for (let i = 0; i < RUNS; i++) {
    // Each goes first in every other pair.
    const [first, second] = i % 2 === 0 ? [0, 1] : [1, 0];
    const results = [];
    results[first] = await measure(targets[first] as (typeof targets)[0]);
    results[second] = await measure(targets[second] as (typeof targets)[0]);
    type Measured = Awaited<ReturnType<typeof measure>>;
    const [n, m] = results as [Measured, Measured];
    pairs.push({ ratio: m.perSecond / n.perSecond, cpuRatio: n.cpuUs / m.cpuUs });
    console.log(
      `  run ${i + 1}: none ${n.perSecond.toFixed(0)} req/s (${n.cpuUs.toFixed(1)} µs CPU/req), ${REVOKED} revoked ${m.perSecond.toFixed(0)} req/s (${m.cpuUs.toFixed(1)} µs CPU/req)`,
    );
  }
  console.log(
    `  median ratio (${REVOKED} revoked / none): throughput ${median(pairs.map((p) => p.ratio)).toFixed(2)}, by CPU per request ${median(pairs.map((p) => p.cpuRatio)).toFixed(2)}`,
  );
  await Promise.all([none.stop(), many.stop()]);
  await Promise.all([empty.drop(), full.drop()]);
}

async function main() {
  if (!DATABASE_URL || !process.env.REDIS_URL) {
    throw new Error("set DATABASE_URL and REDIS_URL: revocations reach other instances through Redis");
  }
  await propagation();
  await verifyWithLargeMirror(DATABASE_URL);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
