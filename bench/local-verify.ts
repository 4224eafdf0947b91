import { createPublicKey, verify } from "node:crypto";
import { createLocalVerifier, createVerifier, type VerifyError } from "../src/client/index.js";
import { startTcpProxy } from "../test/helpers/tcp-proxy.js";
import { BENCH_CALLER_KEY } from "./lib/caller.js";
import { percentile, runLoad } from "./lib/load.js";
import { describeBackends, startBenchStack } from "./lib/service.js";

/**
 * The local verifier (createLocalVerifier) in this process against service processes:
 *  1. a Logout on instance A, refused by a local verifier subscribed to instance B (the same
 *     instance without DATABASE_URL): time from Logout's answer to the first local refusal;
 *  2. a warm token: local verify against VerifyToken over gRPC, sequential calls;
 *  3. cold tokens (each verified once): local verify against bare ES256 verification;
 *  4. a 10 s partition between the verifier and the service, sessions logged out during it:
 *     after it heals, how many of their tokens were accepted (none may be) and when all were refused.
 * Usage: npm run bench:local-verify (DATABASE_URL / REDIS_URL select the real servers).
 */
const LOGOUTS = Number(process.env.BENCH_LOGOUTS ?? 300);
const WARM_CALLS = Number(process.env.BENCH_WARM_CALLS ?? 200_000);
const REMOTE_CALLS = Number(process.env.BENCH_REMOTE_CALLS ?? 5_000);
const COLD_TOKENS = Number(process.env.BENCH_COLD_TOKENS ?? 2_000);
const PARTITION_MS = Number(process.env.BENCH_PARTITION_MS ?? 10_000);
const PARTITION_SESSIONS = 50;

const refused = (err: unknown) => (err as VerifyError).reason;

async function main() {
  const stack = await startBenchStack({ instances: process.env.DATABASE_URL ? 2 : 1 });
  const a = stack.instances[0] as (typeof stack.instances)[0];
  const b = stack.instances.at(-1) as (typeof stack.instances)[0];
  console.log(
    `Local verification benchmark: ${describeBackends()}, logouts on ${stack.instances.length === 2 ? "instance A, verifier subscribed to instance B" : "the one instance"}`,
  );
  const address = `127.0.0.1:${b.service.grpcPort}`;
  const local = createLocalVerifier({ address, callerKey: BENCH_CALLER_KEY });
  await local.ready();
  const login = async () => (await a.login(stack.issueCode())).tokens?.accessToken as string;

  // 1. Propagation.
  const lags: number[] = [];
  for (let i = 0; i < LOGOUTS; i++) {
    const token = await login();
    await local.verify(token);
    await a.logout(token);
    const answered = performance.now();
    for (;;) {
      const accepted = await local.verify(token).then(
        () => true,
        (err: unknown) => refused(err) !== "TOKEN_REVOKED",
      );
      if (!accepted) break;
      await new Promise((r) => setImmediate(r));
    }
    lags.push(performance.now() - answered);
  }
  lags.sort((x, y) => x - y);
  console.log(
    `logout -> local refusal (${LOGOUTS} logouts): p50 ${percentile(lags, 0.5).toFixed(2)} ms, p99 ${percentile(lags, 0.99).toFixed(2)} ms, max ${(lags.at(-1) as number).toFixed(2)} ms`,
  );

  // 2. A warm token, one call at a time.
  const warm = await login();
  for (let i = 0; i < 1000; i++) await local.verify(warm);
  let started = performance.now();
  for (let i = 0; i < WARM_CALLS; i++) await local.verify(warm);
  const localWarmUs = ((performance.now() - started) * 1000) / WARM_CALLS;
  const remote = createVerifier({ address, callerKey: BENCH_CALLER_KEY });
  for (let i = 0; i < 500; i++) await remote.verify(warm);
  started = performance.now();
  for (let i = 0; i < REMOTE_CALLS; i++) await remote.verify(warm);
  const remoteUs = ((performance.now() - started) * 1000) / REMOTE_CALLS;
  console.log(
    `warm token, sequential: local ${localWarmUs.toFixed(2)} us/call, VerifyToken over gRPC ${remoteUs.toFixed(1)} us/call: local ${(remoteUs / localWarmUs).toFixed(0)}x faster`,
  );

  // 3. Cold tokens: each verified once, against ES256 verification alone on the same tokens.
  const tokens: string[] = [];
  await runLoad(COLD_TOKENS, 64, async () => {
    tokens.push(await login());
  });
  started = performance.now();
  for (const token of tokens) await local.verify(token);
  const localColdPerSecond = tokens.length / ((performance.now() - started) / 1000);
  const jwks = (await (
    await fetch(`http://127.0.0.1:${b.service.httpPort}/.well-known/jwks.json`)
  ).json()) as {
    keys: Array<Record<string, string>>;
  };
  const keys = new Map(jwks.keys.map((k) => [k.kid, createPublicKey({ key: k, format: "jwk" })]));
  started = performance.now();
  for (const token of tokens) {
    const [header, payload, signature] = token.split(".") as [string, string, string];
    const kid = (JSON.parse(Buffer.from(header, "base64url").toString()) as { kid: string }).kid;
    verify(
      "sha256",
      Buffer.from(`${header}.${payload}`),
      { key: keys.get(kid) as ReturnType<typeof createPublicKey>, dsaEncoding: "ieee-p1363" },
      Buffer.from(signature, "base64url"),
    );
  }
  const es256PerSecond = tokens.length / ((performance.now() - started) / 1000);
  console.log(
    `cold tokens (${tokens.length}, each once): local ${localColdPerSecond.toFixed(0)}/s, bare ES256 verification ${es256PerSecond.toFixed(0)}/s (${((100 * localColdPerSecond) / es256PerSecond).toFixed(0)}%)`,
  );

  // 4. A partition: sessions logged out while the verifier cannot hear of it.
  const proxy = await startTcpProxy({ host: "127.0.0.1", port: b.service.grpcPort });
  const partitioned = createLocalVerifier({
    address: `127.0.0.1:${proxy.port}`,
    callerKey: BENCH_CALLER_KEY,
    maxStalenessMs: 2000,
    maxReconnectBackoffMs: 500,
  });
  await partitioned.ready();
  const doomed = await Promise.all(Array.from({ length: PARTITION_SESSIONS }, login));
  for (const token of doomed) await partitioned.verify(token);
  await proxy.cut();
  const cutAt = performance.now();
  await new Promise((r) => setTimeout(r, PARTITION_MS / 2));
  for (const token of doomed) await a.logout(token);
  await new Promise((r) => setTimeout(r, PARTITION_MS - (performance.now() - cutAt)));
  await proxy.restore();
  const healed = performance.now();
  let accepted = 0;
  let unavailable = 0;
  const pending = new Set(doomed);
  while (pending.size > 0 && performance.now() - healed < 30_000) {
    for (const token of [...pending]) {
      await partitioned.verify(token).then(
        () => accepted++,
        (err: unknown) => {
          if (refused(err) === "TOKEN_REVOKED") pending.delete(token);
          else unavailable++;
        },
      );
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  console.log(
    `${PARTITION_MS / 1000} s partition, ${PARTITION_SESSIONS} sessions logged out during it: ${accepted} of their tokens accepted after it healed, all refused ${(performance.now() - healed).toFixed(0)} ms after it (${unavailable} answers unavailable meanwhile)${pending.size > 0 ? `, ${pending.size} never refused` : ""}`,
  );

  partitioned.close();
  proxy.close();
  remote.close();
  local.close();
  await stack.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
