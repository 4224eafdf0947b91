import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { createVerifier } from "../src/client/index.js";
import {
  IdentityService,
  WatchRevocationsRequestSchema,
  type WatchRevocationsResponse,
} from "../src/gen/identity/v1/identity_pb.js";
import { grpcMethodDefinition } from "../src/wire/grpc-method.js";
import { BENCH_CALLER_KEY } from "./lib/caller.js";
import { processCpuMs, residentMiB } from "./lib/cpu.js";
import { percentile, runLoad } from "./lib/load.js";
import { describeBackends, startBenchStack } from "./lib/service.js";

/**
 * What WatchRevocations subscribers cost one service instance. Subscribers are opened from this
 * process, each on a connection of its own (as one per internal-service instance would be), in
 * steps up to BENCH_SUBSCRIBERS; at each step:
 *  - the service's RSS, and its CPU while nothing happens (10 s);
 *  - BENCH_LOGOUTS logouts one after another: the service's CPU per logout, and the time from
 *    Logout's answer until every subscriber has the revocation (this process reads them all, so
 *    that time includes its own work);
 *  - VerifyToken (sequential, over gRPC) and Login (16 at a time) beside the subscribers.
 * Usage: npm run bench:watch-subscribers (DATABASE_URL / REDIS_URL select the real servers).
 */
const STEPS = (process.env.BENCH_SUBSCRIBERS ?? "0,1000,5000").split(",").map(Number);
const LOGOUTS = Number(process.env.BENCH_LOGOUTS ?? 100);
const IDLE_MS = 10_000;

const definition = grpcMethodDefinition(IdentityService, IdentityService.method.watchRevocations);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The session id (sid) of an access token. */
const sidOf = (token: string) =>
  JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString()).sid as string;

async function main() {
  const stack = await startBenchStack({
    env: { MAX_CONNECTIONS: "20000", MAX_CONNECTIONS_PER_ADDRESS: "20000" },
  });
  const pid = stack.service.pid;
  const address = `127.0.0.1:${stack.service.grpcPort}`;
  console.log(
    `WatchRevocations subscribers on one instance: ${describeBackends()}, ${LOGOUTS} logouts a step`,
  );

  /** Revocations awaited: session id -> subscribers yet to hear of it, and who to tell. */
  const awaited = new Map<string, { remaining: number; done: () => void }>();
  const subscribers: Array<{
    client: grpc.Client;
    call: grpc.ClientReadableStream<WatchRevocationsResponse>;
  }> = [];
  let failures = 0;

  async function subscribe(): Promise<void> {
    // A local subchannel pool: a connection of its own, not one shared with every other client.
    const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${BENCH_CALLER_KEY}`);
    const call = client.makeServerStreamRequest(
      definition.path,
      definition.requestSerialize,
      definition.responseDeserialize as (bytes: Buffer) => WatchRevocationsResponse,
      create(WatchRevocationsRequestSchema, { after: "" }),
      metadata,
    );
    subscribers.push({ client, call });
    await new Promise<void>((resolve, reject) => {
      call.on("data", (message: WatchRevocationsResponse) => {
        if (message.snapshotComplete) resolve();
        for (const r of message.revoked) {
          const waiting = awaited.get(r.sessionId);
          if (waiting && --waiting.remaining === 0) waiting.done();
        }
      });
      call.on("error", (err) => {
        failures++;
        reject(err);
      });
    });
  }

  const remote = createVerifier({ address, callerKey: BENCH_CALLER_KEY });
  const login = async () => (await stack.login(stack.issueCode())).tokens?.accessToken as string;
  const warm = await login();
  // Warm both processes up first, so the first step is not measured on cold code.
  for (let i = 0; i < 2000; i++) await remote.verify(warm);
  await runLoad(400, 16, login);

  console.log(
    "subscribers | open (s) | service RSS (MiB) | idle CPU (ms/s) | CPU a logout (ms) | logout -> all subscribers p50 / p99 (ms) | VerifyToken (us/call) | Login (/s)",
  );
  for (const target of STEPS) {
    const opening = performance.now();
    while (subscribers.length < target) {
      const batch = Math.min(200, target - subscribers.length);
      await Promise.all(Array.from({ length: batch }, subscribe));
    }
    const openSeconds = (performance.now() - opening) / 1000;
    await sleep(2000);
    const rss = residentMiB(pid);
    let cpu = processCpuMs(pid) ?? Number.NaN;
    await sleep(IDLE_MS);
    const idleCpu = (((processCpuMs(pid) ?? Number.NaN) - cpu) * 1000) / IDLE_MS;

    const tokens = await Promise.all(Array.from({ length: LOGOUTS }, login));
    const lags: number[] = [];
    cpu = processCpuMs(pid) ?? Number.NaN;
    for (const token of tokens) {
      let answered = 0;
      const heard = new Promise<number>((resolve) => {
        if (subscribers.length === 0) return resolve(0);
        awaited.set(sidOf(token), { remaining: subscribers.length, done: () => resolve(performance.now()) });
      });
      await stack.logout(token);
      answered = performance.now();
      lags.push(Math.max(0, (await heard) - answered));
      awaited.delete(sidOf(token));
    }
    const cpuPerLogout = ((processCpuMs(pid) ?? Number.NaN) - cpu) / LOGOUTS;
    lags.sort((x, y) => x - y);

    for (let i = 0; i < 200; i++) await remote.verify(warm);
    const started = performance.now();
    for (let i = 0; i < 2000; i++) await remote.verify(warm);
    const verifyUs = ((performance.now() - started) * 1000) / 2000;
    const logins = await runLoad(400, 16, login);

    console.log(
      `${target} | ${openSeconds.toFixed(1)} | ${rss.toFixed(0)} | ${idleCpu.toFixed(1)} | ${cpuPerLogout.toFixed(2)} | ${target === 0 ? "-" : `${percentile(lags, 0.5).toFixed(1)} / ${percentile(lags, 0.99).toFixed(1)}`} | ${verifyUs.toFixed(0)} | ${logins.perSecond.toFixed(0)}${logins.errors ? ` (${logins.errors} errors: ${logins.firstError})` : ""}`,
    );
  }
  if (failures > 0) console.log(`${failures} subscriptions failed`);

  for (const s of subscribers) {
    s.call.cancel();
    s.client.close();
  }
  remote.close();
  await stack.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
