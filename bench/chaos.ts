import { Code, ConnectError } from "@connectrpc/connect";
import postgres from "postgres";
import { createIdentityClient, type IdentityClient } from "../src/client/identity-client.js";
import { createVerifier, type Verifier, VerifyError } from "../src/client/verifier.js";
import { ErrorInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { startPrivateRedis } from "../test/helpers/redis-server.js";
import { BENCH_CALLER_KEY } from "./lib/caller.js";
import { residentMiB } from "./lib/cpu.js";
import { type OwnPostgres, startOwnPostgres } from "./lib/own-servers.js";
import { startBenchStack } from "./lib/service.js";

/**
 * The fault suite: two service instances on a Postgres cluster and a Redis of its own (spare
 * ports, a temporary directory: never the machine's shared servers), a mixed load of Logins,
 * Refreshes (Connect, the BFF's client) and VerifyTokens (grpc-js, the verifier client) spread
 * over the instances that answer their health check, as a balancer would, and one fault after
 * another. For each: what the callers saw by status, how long after the repair until a whole
 * second passed without an error, and what was lost: a session a caller was told it had, whose
 * current refresh token is then refused, or a valid access token refused by VerifyToken. After
 * the last fault every session ever confirmed is refreshed once more.
 *
 *   npm run chaos     (CHAOS_SOAK_SECONDS=300 of load alone first, CHAOS_FAULT_SECONDS=10 a fault)
 */
const FAULT_MS = Number(process.env.CHAOS_FAULT_SECONDS ?? 10) * 1000;
/** The mixed load alone first, the instances' RSS sampled: the steady state the README states. */
const SOAK_MS = Number(process.env.CHAOS_SOAK_SECONDS ?? 300) * 1000;
const SETTLE_MS = 3_000;
/**
 * CHAOS_FAULTS=none: the soak alone; CHAOS_FAULTS=postgres,wechat: only the faults whose names
 * contain one of these words (case-insensitive); unset: every fault.
 */
const FAULT_FILTER = (process.env.CHAOS_FAULTS ?? "")
  .toLowerCase()
  .split(",")
  .map((word) => word.trim())
  .filter(Boolean);
const runsFault = (name: string) =>
  FAULT_FILTER.length === 0 || FAULT_FILTER.some((word) => name.toLowerCase().includes(word));
/** How long each fault is watched after its repair. */
const WATCH_MS = Number(process.env.CHAOS_WATCH_SECONDS ?? 15) * 1000;
const RATES = { Login: 40, Refresh: 60, VerifyToken: 300 } as const;
type Method = keyof typeof RATES;
/** Calls of one method in flight at most; more would be a client piling up, not load. */
const MAX_IN_FLIGHT = 200;
/** The lifetime refusals that say a session was lost. */
const LOST_REASONS = new Set(["TOKEN_INVALID", "REFRESH_TOKEN_REUSED", "TOKEN_REVOKED", "TOKEN_EXPIRED"]);

interface Device {
  accessToken: string;
  refreshToken: string;
  busy: boolean;
  lost: boolean;
}

interface Outcome {
  method: Method;
  at: number;
  status: string;
}

interface Instance {
  name: string;
  identity: IdentityClient;
  verifier: Verifier;
  healthUrl: string;
  healthy: boolean;
  service: Awaited<ReturnType<Awaited<ReturnType<typeof startBenchStack>>["startInstance"]>>["service"];
}

/** What to stop if the suite fails half-way, so no server of its own outlives it. */
const leftovers: Array<() => void> = [];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function statusOf(err: unknown): { status: string; reason: string } {
  if (err instanceof VerifyError) return { status: err.kind.toUpperCase(), reason: err.reason };
  const connect = ConnectError.from(err);
  const reason = connect.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
  // Code.DeadlineExceeded -> DEADLINE_EXCEEDED, as gRPC spells it.
  const status = Code[connect.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  return { status, reason };
}

async function main() {
  console.log("starting a Postgres cluster and a Redis of the suite's own...");
  const pg: OwnPostgres = await startOwnPostgres();
  leftovers.push(() => pg.destroy());
  const redis = await startPrivateRedis();
  leftovers.push(() => void redis.stop());
  const stack = await startBenchStack({
    instances: 0,
    env: {
      DATABASE_URL: pg.url,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: "chaos:",
      SHUTDOWN_DELAY: "2s",
      SHUTDOWN_TIMEOUT: "10s",
      LOG_LEVEL: "info",
      // Every call comes from this one process, as from one BFF that passes no ClientInfo.
      RATE_LIMIT_LOGIN_FAILURES: "1000000",
      RATE_LIMIT_REFRESH_FAILURES: "1000000",
    },
  });
  const instances: Instance[] = [];
  const startInstance = async (name: string): Promise<Instance> => {
    const { service, close } = await stack.startInstance();
    close();
    leftovers.push(() => service.signal("SIGKILL"));
    return {
      name,
      service,
      identity: createIdentityClient({
        baseUrl: `http://127.0.0.1:${service.httpPort}`,
        callerKey: BENCH_CALLER_KEY,
        timeoutMs: 3000,
      }),
      verifier: createVerifier({
        address: `127.0.0.1:${service.grpcPort}`,
        callerKey: BENCH_CALLER_KEY,
        deadlineMs: 1000,
        maxReconnectBackoffMs: 500,
      }),
      healthUrl: `http://127.0.0.1:${service.httpPort}/healthz`,
      healthy: true,
    };
  };
  instances.push(await startInstance("A"), await startInstance("B"));

  // The balancer: health checks every 250 ms; calls go to the instances that pass.
  const health = setInterval(() => {
    for (const instance of instances) {
      fetch(instance.healthUrl, { signal: AbortSignal.timeout(500) })
        .then((res) => {
          instance.healthy = res.status === 200;
        })
        .catch(() => {
          instance.healthy = false;
        });
    }
  }, 250);
  let turn = 0;
  const pick = (): Instance | undefined => {
    const up = instances.filter((i) => i.healthy);
    return up[turn++ % Math.max(1, up.length)];
  };

  const devices: Device[] = [];
  const outcomes: Outcome[] = [];
  const inFlight: Record<Method, number> = { Login: 0, Refresh: 0, VerifyToken: 0 };
  /** Devices waiting to try a failed Refresh again. */
  let retrying = 0;
  let lostSessions = 0;
  let refusedValidTokens = 0;
  const record = (method: Method, status: string): void => {
    outcomes.push({ method, at: Date.now(), status });
  };

  /**
   * A device refreshes; after a failure that is not the end of its session it tries again with
   * the same token 1, 2, 4, then 8 s later, as a mini-program that needs a token does.
   */
  const refreshDevice = async (device: Device, attempt: number): Promise<void> => {
    const instance = pick();
    if (!instance) return record("Refresh", "NO_INSTANCE");
    device.busy = true;
    let retry = false;
    try {
      const tokens = (await instance.identity.refresh({ refreshToken: device.refreshToken })).tokens;
      if (!tokens) throw new Error("Refresh answered without tokens");
      device.accessToken = tokens.accessToken;
      device.refreshToken = tokens.refreshToken;
      record("Refresh", "OK");
    } catch (err) {
      const { status, reason } = statusOf(err);
      if (LOST_REASONS.has(reason)) {
        device.lost = true;
        lostSessions++;
      } else retry = true;
      record("Refresh", reason && status === "UNAUTHENTICATED" ? reason : status);
    } finally {
      if (!retry) device.busy = false;
    }
    // The retry waits apart from the calls in flight: a device waiting to try again holds no call.
    if (retry) {
      retrying++;
      void sleep(1000 * 2 ** Math.min(attempt, 3))
        .then(() => refreshDevice(device, attempt + 1))
        .finally(() => retrying--);
    }
  };

  const calls: Record<Method, () => Promise<void>> = {
    async Login() {
      const instance = pick();
      if (!instance) return record("Login", "NO_INSTANCE");
      try {
        const answer = await instance.identity.login({ appId: "wxbench000000001", code: stack.issueCode() });
        const tokens = answer.tokens;
        if (!tokens) throw new Error("Login answered without tokens");
        devices.push({
          accessToken: tokens.accessToken,
          refreshToken: tokens.refreshToken,
          busy: false,
          lost: false,
        });
        record("Login", "OK");
      } catch (err) {
        record("Login", statusOf(err).status);
      }
    },
    Refresh: () => {
      const device = devices[Math.floor(Math.random() * devices.length)];
      if (!device || device.busy || device.lost) return Promise.resolve();
      return refreshDevice(device, 0);
    },
    async VerifyToken() {
      const device = devices[Math.floor(Math.random() * devices.length)];
      const instance = pick();
      if (!device || device.lost) return;
      if (!instance) return record("VerifyToken", "NO_INSTANCE");
      const token = device.accessToken;
      try {
        await instance.verifier.verify(token);
        record("VerifyToken", "OK");
      } catch (err) {
        const { status, reason } = statusOf(err);
        // A token replaced meanwhile is still valid (it expires on its own); a refusal is a loss.
        if (status === "UNAUTHENTICATED") refusedValidTokens++;
        record("VerifyToken", status === "UNAUTHENTICATED" ? reason : status);
      }
    },
  };

  // The load: each method at its rate, ticking every 20 ms.
  const load = setInterval(() => {
    for (const method of Object.keys(RATES) as Method[]) {
      for (let n = 0; n < RATES[method] / 50; n++) {
        if (inFlight[method] >= MAX_IN_FLIGHT) {
          record(method, "CLIENT_QUEUE_FULL");
          continue;
        }
        inFlight[method]++;
        void calls[method]().finally(() => inFlight[method]--);
      }
    }
  }, 20);

  // The faults, in order.
  const admin = () => postgres(pg.url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  const sandbox = stack.sandbox;
  const during = async (ms: number, every: () => void) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      every();
      await sleep(200);
    }
  };
  const restartInstance = async (index: number) => {
    const old = instances[index] as Instance;
    old.verifier.close();
    instances[index] = await startInstance(old.name);
  };
  const exits: string[] = [];
  const faults: Array<{ name: string; run(): Promise<void> }> = [
    {
      name: `Redis killed (SIGKILL), back empty after ${FAULT_MS / 1000} s`,
      async run() {
        await redis.stop();
        await sleep(FAULT_MS);
        await redis.start();
      },
    },
    {
      name: "Redis restarted (killed and started at once, empty)",
      async run() {
        await redis.stop();
        await redis.start();
      },
    },
    {
      name: "Redis FLUSHALL",
      async run() {
        await redis.command("FLUSHALL");
      },
    },
    {
      name: `Postgres stopped (pg_ctl stop -m fast) for ${FAULT_MS / 1000} s`,
      async run() {
        pg.stop();
        await sleep(FAULT_MS);
        pg.start();
      },
    },
    {
      name: `sessions and refresh_tokens locked for ${FAULT_MS / 1000} s`,
      async run() {
        const sql = admin();
        await sql
          .begin(async (tx) => {
            await tx`lock table sessions, refresh_tokens in access exclusive mode`;
            await sleep(FAULT_MS);
          })
          .finally(() => sql.end());
      },
    },
    {
      name: `WeChat hangs for ${FAULT_MS / 1000} s`,
      async run() {
        await during(FAULT_MS, () => sandbox.failNext("hang", 20));
        sandbox.reset();
      },
    },
    {
      name: `WeChat answers HTTP 500 for ${FAULT_MS / 1000} s`,
      async run() {
        await during(FAULT_MS, () => sandbox.failNext("http500", 20));
        sandbox.reset();
      },
    },
    {
      name: `WeChat answers garbage for ${FAULT_MS / 1000} s`,
      async run() {
        await during(FAULT_MS, () => sandbox.failNext("malformed", 20));
        sandbox.reset();
      },
    },
    {
      name: `WeChat slow (2 s a call) for ${FAULT_MS / 1000} s`,
      async run() {
        sandbox.setLatency(2000);
        await sleep(FAULT_MS);
        sandbox.reset();
      },
    },
    {
      name: "SIGTERM to instance A under load, then A started again",
      async run() {
        const instance = instances[0] as Instance;
        const sent = Date.now();
        instance.service.signal("SIGTERM");
        const { code, signal } = await instance.service.exited;
        exits.push(`SIGTERM: A exited ${signal ?? `with code ${code}`} after ${Date.now() - sent} ms`);
        await restartInstance(0);
      },
    },
    {
      name: "SIGKILL to instance B under load, then B started again",
      async run() {
        const instance = instances[1] as Instance;
        instance.service.signal("SIGKILL");
        await instance.service.exited;
        instance.healthy = false;
        await restartInstance(1);
      },
    },
  ];

  console.log(
    `mixed load: ${Object.entries(RATES)
      .map(([m, r]) => `${m} ${r}/s`)
      .join(", ")}, over two instances`,
  );
  await sleep(SETTLE_MS);
  if (SOAK_MS > 0) {
    const rss = () =>
      instances.map((i) => `${i.name} ${Math.round(residentMiB(i.service.pid))} MB`).join(", ");
    console.log(`soak: the load alone for ${SOAK_MS / 1000} s; RSS at the start: ${rss()}`);
    for (let elapsed = 0; elapsed < SOAK_MS; elapsed += 30_000) {
      await sleep(Math.min(30_000, SOAK_MS - elapsed));
      const calls = outcomes.length;
      const errors = outcomes.filter((o) => o.status !== "OK").length;
      console.log(
        `  ${(elapsed + 30_000) / 1000} s: RSS ${rss()}; ${calls} calls, ${errors} not OK, ${devices.length} sessions`,
      );
      outcomes.length = 0;
    }
  }
  const rows: string[] = [];
  for (const fault of faults.filter((f) => runsFault(f.name))) {
    const lostBefore = lostSessions;
    const refusedBefore = refusedValidTokens;
    const from = Date.now();
    await fault.run();
    const repaired = Date.now();
    await sleep(WATCH_MS);
    const seen = outcomes.filter((o) => o.at >= from);
    const byMethod = (Object.keys(RATES) as Method[]).map((method) => {
      const counts = new Map<string, number>();
      for (const o of seen) if (o.method === method) counts.set(o.status, (counts.get(o.status) ?? 0) + 1);
      const parts = [...counts].sort((a, b) => b[1] - a[1]).map(([status, n]) => `${status} ${n}`);
      return parts.join(", ");
    });
    const recovery = recoveryMs(seen, repaired);
    const lost = `${lostSessions - lostBefore} sessions, ${refusedValidTokens - refusedBefore} valid tokens refused`;
    rows.push(
      `| ${fault.name} | ${byMethod.join(" | ")} | ${recovery === undefined ? `not within ${WATCH_MS / 1000} s` : `${(recovery / 1000).toFixed(1)} s`} | ${lost} |`,
    );
    console.log(rows.at(-1));
    outcomes.length = 0;
  }

  clearInterval(load);
  while (retrying > 0 || Object.values(inFlight).some((n) => n > 0)) await sleep(100);
  // Every session a caller was ever told it had, refreshed once more.
  let sweptLost = 0;
  let index = 0;
  const sweep = async () => {
    for (let device = devices[index++]; device; device = devices[index++]) {
      if (device.lost) continue;
      const instance = pick();
      if (!instance) throw new Error("no instance answers its health check");
      try {
        const tokens = (await instance.identity.refresh({ refreshToken: device.refreshToken })).tokens;
        if (tokens) device.refreshToken = tokens.refreshToken;
      } catch (err) {
        if (LOST_REASONS.has(statusOf(err).reason)) sweptLost++;
        else throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, sweep));

  console.log(
    "\n| fault | Login | Refresh | VerifyToken | recovery | lost |\n| --- | --- | --- | --- | --- | --- |",
  );
  for (const row of rows) console.log(row);
  for (const exit of exits) console.log(`\n${exit}`);
  console.log(
    `\nconfirmed sessions: ${devices.length}; refused in the final sweep: ${sweptLost}; lost in all: ${lostSessions + sweptLost}, valid tokens refused: ${refusedValidTokens}`,
  );

  clearInterval(health);
  for (const instance of instances) {
    instance.verifier.close();
    await instance.service.stop();
  }
  await stack.stop();
  await redis.stop();
  pg.destroy();
  process.exit(lostSessions + sweptLost + refusedValidTokens > 0 ? 1 : 0);
}

/** From the repair until the start of the first whole second with calls and no error (undefined: none). */
function recoveryMs(outcomes: Outcome[], repaired: number): number | undefined {
  const after = outcomes.filter((o) => o.at >= repaired).sort((a, b) => a.at - b.at);
  for (const start of [repaired, ...after.filter((o) => o.status !== "OK").map((o) => o.at + 1)]) {
    const window = after.filter((o) => o.at >= start && o.at < start + 1000);
    if (
      window.length > 0 &&
      window.every((o) => o.status === "OK") &&
      start + 1000 <= (after.at(-1)?.at ?? 0)
    )
      return start - repaired;
  }
  return undefined;
}

function stopLeftovers(): void {
  for (const stop of leftovers.reverse()) {
    try {
      stop();
    } catch {
      // the next one still runs
    }
  }
}

// Interrupted (Ctrl-C, a timeout's SIGTERM): no server of the suite's own outlives it.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    stopLeftovers();
    process.exit(130);
  });
}

main().catch((err) => {
  console.error(err);
  stopLeftovers();
  process.exit(1);
});
