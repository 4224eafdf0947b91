import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { VerifyTokenRequestSchema } from "../src/gen/identity/v1/identity_pb.js";
import { AUTHORIZATION_HEADER } from "./lib/caller.js";
import { withCpuPerCall } from "./lib/cpu.js";
import { ensureH2load, h2loadPost } from "./lib/h2load.js";
import { median } from "./lib/load.js";
import { describeBackends, freePort, startBenchStack, startNodeServer } from "./lib/service.js";

/**
 * What one unary call over Connect costs the server, apart from the method's own work: h2load
 * POSTs the same VerifyToken request (h2c, binary, 4 connections x 16 streams) to
 *   - a bare node:http2 server answering fixed bytes,
 *   - connect-node's adapter answering a fixed message,
 *   - our service's VerifyToken over Connect (one token, so it is answered from the cache).
 * Each Connect call of the BFF (Login, Refresh, ...) pays the difference between the first two.
 * Usage: npm run bench:connect (BENCH_ROUNDS, BENCH_REQUESTS).
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 40_000);
const PATH = "/identity.v1.IdentityService/VerifyToken";
const HEADERS = ["content-type: application/proto", "connect-protocol-version: 1", AUTHORIZATION_HEADER];

async function startBare(mode: "http2" | "connect") {
  const port = await freePort();
  const script = join(dirname(fileURLToPath(import.meta.url)), "bare-http-server.js");
  const server = await startNodeServer(script, [mode, String(port)], {}, "server ready");
  return { pid: server.pid, url: `http://127.0.0.1:${port}${PATH}`, stop: server.stop };
}

async function main() {
  if (!ensureH2load()) throw new Error("h2load is not installed and apt-get could not install it");
  const stack = await startBenchStack();
  const login = await stack.login(stack.issueCode());
  const body = Buffer.from(
    toBinary(
      VerifyTokenRequestSchema,
      create(VerifyTokenRequestSchema, { accessToken: login.tokens?.accessToken ?? "" }),
    ),
  );
  const targets = [
    { name: "bare node:http2", ...(await startBare("http2")) },
    { name: "bare connect-node", ...(await startBare("connect")) },
    {
      name: "our VerifyToken over Connect",
      pid: stack.service.pid,
      url: `http://127.0.0.1:${stack.service.httpPort}${PATH}`,
      stop: async () => {},
    },
  ];
  console.log(
    `Connect overhead: ${describeBackends()}, h2load -c 4 -m 16, ${REQUESTS} requests per run, ${ROUNDS} rounds`,
  );
  const cpu = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  const rates = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const target of targets) {
      const result = await withCpuPerCall(target.pid, REQUESTS, () =>
        h2loadPost(target.url, body, REQUESTS, 4, 16, HEADERS),
      );
      if (result.failed > 0 || result.succeeded !== REQUESTS)
        throw new Error(`${target.name}: ${result.failed} of ${REQUESTS} requests failed`);
      cpu.get(target.name)?.push(result.cpuUs);
      rates.get(target.name)?.push(result.perSecond);
      console.log(
        `  round ${round}: ${target.name.padEnd(30)} ${result.perSecond.toFixed(0).padStart(6)} req/s  ${result.cpuUs.toFixed(1)} µs CPU/req`,
      );
    }
  }
  console.log("medians:");
  for (const target of targets) {
    console.log(
      `  ${target.name.padEnd(30)} ${median(rates.get(target.name) ?? [])
        .toFixed(0)
        .padStart(6)} req/s  ${median(cpu.get(target.name) ?? []).toFixed(1)} µs CPU/req`,
    );
  }
  for (const target of targets) await target.stop();
  await stack.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
