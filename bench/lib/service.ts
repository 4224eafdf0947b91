import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { createConnectTransport } from "@connectrpc/connect-node";
import { IdentityService } from "../../src/gen/identity/v1/identity_pb.js";
import { startSandboxServer } from "../../src/sandbox/sandbox-server.js";
import { createScratchDatabase } from "../../test/helpers/scratch-database.js";
import { AUTHORIZATION, BENCH_CALLERS } from "./caller.js";
import { createRawConnectClient } from "./connect-raw-client.js";

/** The built entry point (bench scripts run from dist/bench after `npm run build`). */
const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "main.js");

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface ServiceProcess {
  pid: number;
  grpcPort: number;
  httpPort: number;
  /** The fields of the service's "identity service started" log line. */
  started: Record<string, unknown>;
  exited: ServerProcess["exited"];
  signal: ServerProcess["signal"];
  stop(): Promise<void>;
}

/** BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the servers under load. */
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);

export interface ServerProcess {
  pid: number;
  /** The line the process printed when it was ready. */
  readyLine: string;
  /** How the process ended (a signal's name when a signal ended it). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal without waiting (the fault suite's SIGTERM and SIGKILL). */
  signal(signal: NodeJS.Signals): void;
  stop(): Promise<void>;
}

/**
 * Runs a Node server script of ours (with BENCH_NODE_ARGS) and waits until its stdout shows a
 * line containing `ready`. Its stdout goes straight to a file, never to a pipe: h2load runs
 * through execFileSync, which blocks this process's event loop, and a pipe left unread that long
 * fills up and stalls every write the server makes (with --trace-gc, every GC).
 * BENCH_SERVICE_LOG=/tmp/service.log keeps those files (/tmp/service.log.main.1, then .2, ...:
 * the script's name and a count as the suffix).
 */
let serversStarted = 0;

export async function startNodeServer(
  script: string,
  args: string[],
  env: Record<string, string>,
  ready: string,
): Promise<ServerProcess> {
  const name = `${basename(script, ".js")}.${++serversStarted}`;
  const keep = process.env.BENCH_SERVICE_LOG;
  const logPath = keep ? `${keep}.${name}` : join(tmpdir(), `bench-${process.pid}-${name}.log`);
  const logFd = openSync(logPath, "w");
  const child: ChildProcess = spawn(process.execPath, [...NODE_ARGS, script, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", logFd, "inherit"],
  });
  closeSync(logFd);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const output = () => readFileSync(logPath, "utf8");
  const readyLine = await new Promise<string>((resolve, reject) => {
    const exited = (code: number | null) => {
      clearInterval(poll);
      reject(new Error(`${name} exited with ${code}: ${output()}`));
    };
    const poll = setInterval(() => {
      const line = output()
        .split("\n")
        .find((l) => l.includes(ready));
      if (line === undefined) return;
      clearInterval(poll);
      child.off("exit", exited);
      resolve(line);
    }, 20);
    child.once("exit", exited);
  });
  return {
    pid: child.pid as number,
    readyLine,
    exited,
    signal: (signal) => child.kill(signal),
    stop: () =>
      new Promise((resolve) => {
        const done = () => {
          if (!keep) rmSync(logPath, { force: true });
          resolve();
        };
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once("exit", done);
        child.kill("SIGTERM");
      }),
  };
}

/** Starts the real service (`node dist/src/main.js`) in its own process, as production runs it. */
export async function startService(env: Record<string, string>): Promise<ServiceProcess> {
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const server = await startNodeServer(
    MAIN,
    [],
    { ...env, GRPC_PORT: String(grpcPort), HTTP_PORT: String(httpPort), HOST: "127.0.0.1" },
    "identity service started",
  );
  return {
    pid: server.pid,
    grpcPort,
    httpPort,
    started: JSON.parse(server.readyLine),
    exited: server.exited,
    signal: server.signal,
    stop: server.stop,
  };
}

/** Settings shared by the benchmarks: the real servers when the environment names them. */
export function backendEnv(): Record<string, string> {
  return {
    LOG_LEVEL: "info", // startService waits for the "started" line
    KEY_ENCRYPTION_KEY: Buffer.alloc(32, 3).toString("base64"),
    CALLERS: BENCH_CALLERS,
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : { DATA_DIR: "memory://" }),
    ...(process.env.REDIS_URL
      ? { REDIS_URL: process.env.REDIS_URL, REDIS_KEY_PREFIX: `bench${Date.now()}:` }
      : {}),
  };
}

export function describeBackends(): string {
  return `${process.env.DATABASE_URL ? "PostgreSQL" : "embedded PGlite"} + ${process.env.REDIS_URL ? "Redis" : "in-process store"}, ${CLIENT === "raw" ? "minimal Connect client" : "connect-node client"}`;
}

export const BENCH_APP = { appId: "wxbench000000001", appSecret: "bench-secret" };

/**
 * The BFF's calls over Connect (h2c, binary). By default through a minimal Connect client of
 * ours (bench/lib/connect-raw-client.ts), which costs the shared 2-core machine far less CPU than
 * connect-node's client; BENCH_CLIENT=connect-node uses the real thing.
 */
type DecryptRequest = { accessToken: string; encryptedData: string; iv: string };

export const CLIENT = process.env.BENCH_CLIENT === "connect-node" ? "connect-node" : "raw";

function connectClient(baseUrl: string) {
  /** One unary call of IdentityService, through whichever client BENCH_CLIENT picks. */
  let unary: <I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
  ) => Promise<MessageShape<O>>;
  let close: () => void;
  if (CLIENT === "connect-node") {
    const transport = createConnectTransport({
      baseUrl,
      httpVersion: "2",
      useBinaryFormat: true,
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", AUTHORIZATION);
          return next(req);
        },
      ],
    });
    unary = async (method, request) =>
      (await transport.unary(method, undefined, undefined, undefined, request, undefined)).message;
    close = () => {};
  } else {
    const raw = createRawConnectClient(baseUrl);
    unary = (method, request) =>
      raw.call(
        `/${IdentityService.typeName}/${method.name}`,
        toBinary(method.input, create(method.input, request)),
        method.output,
      );
    close = raw.close;
  }
  const m = IdentityService.method;
  return {
    login: (code: string) => unary(m.login, { appId: BENCH_APP.appId, code }),
    loginWithPhone: (code: string, phoneCode: string) =>
      unary(m.loginWithPhone, { appId: BENCH_APP.appId, code, phoneCode }),
    loginWithPassword: (username: string, password: string) =>
      unary(m.loginWithPassword, { username, password }),
    linkPassword: (accessToken: string, username: string, password: string) =>
      unary(m.linkIdentity, { accessToken, proof: { case: "password", value: { username, password } } }),
    refresh: (refreshToken: string) => unary(m.refresh, { refreshToken }),
    logout: (accessToken: string) => unary(m.logout, { accessToken }),
    decryptUserData: (request: DecryptRequest) => unary(m.decryptUserData, request),
    close,
  };
}

/**
 * What every benchmark needs: a WeChat sandbox in this process, the service in its own process
 * pointed at it, and a BFF-like Connect client (h2c, binary) to log users in. With `instances`,
 * several service processes of one deployment (same database and Redis prefix); `env` adds to or
 * overrides the backend settings.
 */
export async function startBenchStack(options: { instances?: number; env?: Record<string, string> } = {}) {
  const wechat = await startSandboxServer({ apps: [BENCH_APP] });
  // A database of this run's own (unless the caller brings one), so the figures do not depend on
  // what earlier runs left behind.
  const database =
    process.env.DATABASE_URL && !options.env?.DATABASE_URL
      ? await createScratchDatabase(process.env.DATABASE_URL, "identity_bench")
      : undefined;
  const env = {
    ...backendEnv(),
    ...(database ? { DATABASE_URL: database.url } : {}),
    WECHAT_APPS: JSON.stringify([BENCH_APP]),
    WECHAT_API_BASE_URL: wechat.baseUrl,
    ...options.env,
  };
  const startInstance = async () => {
    const service = await startService(env);
    return { service, ...connectClient(`http://127.0.0.1:${service.httpPort}`) };
  };
  const instances = await Promise.all(Array.from({ length: options.instances ?? 1 }, startInstance));
  const first = instances[0] as (typeof instances)[0];
  return {
    ...first,
    instances,
    /** Another service process of this deployment with its Connect client, for the caller to stop. */
    startInstance,
    /** A wx.login() code for a user (a new one when openid is omitted). */
    issueCode: (openid?: string) => wechat.sandbox.issueCode({ appId: BENCH_APP.appId, openid }).code,
    /** A wx.login() code and a getPhoneNumber code of one user, for a phone login. */
    issuePhoneCodes(openid: string, phoneNumber: string) {
      const { code } = wechat.sandbox.issueCode({ appId: BENCH_APP.appId, openid });
      const { code: phoneCode } = wechat.sandbox.issuePhoneCode({
        appId: BENCH_APP.appId,
        openid,
        phoneNumber,
      });
      return { code, phoneCode };
    },
    /** This run's own database on the real server, or undefined on the embedded one. */
    databaseUrl: database?.url,
    /** The WeChat sandbox: its faults, latency and counters. */
    sandbox: wechat.sandbox,
    /** What a WeChat API on the device would hand the mini-program for this user. */
    encryptUserData: (openid: string, data: Record<string, unknown>) =>
      wechat.sandbox.encryptUserData(BENCH_APP.appId, openid, data),
    async stop() {
      for (const i of instances) i.close();
      await Promise.all(instances.map((i) => i.service.stop()));
      await wechat.close();
      await database?.drop();
    },
  };
}

/**
 * With BENCH_PIN=1, servers run on CPU 1 and the load generator on CPU 0, so they stop trading
 * places on this 2-core machine (run-to-run variance was ±40% unpinned).
 */
export const PINNED = process.env.BENCH_PIN === "1";

export function pinToServerCpu(pid: number): void {
  if (PINNED) spawnSync("taskset", ["-a", "-cp", "1", String(pid)], { stdio: "ignore" });
}
