import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { SpanExporter } from "@opentelemetry/sdk-trace";
import { type RunningApp, startApp } from "../../src/app/start-app.js";
import { type Config, parseConfig, type RawEnv, type RedisTopology } from "../../src/config.js";
import type { SharedClock } from "../../src/domain/ports.js";
import { AdminService } from "../../src/gen/identity/v1/admin_pb.js";
import { IdentityService } from "../../src/gen/identity/v1/identity_pb.js";
import type { Logger } from "../../src/observability/logger.js";
import type { WechatSandbox } from "../../src/sandbox/sandbox.js";
import { startSandboxServer } from "../../src/sandbox/sandbox-server.js";
import { REAL_DATABASE_URL, REAL_REDIS_URL } from "./backends.js";
import { createAdminGrpcClient, createGrpcClient } from "./grpc-client.js";
import { createScratchDatabase, uniqueName } from "./scratch-database.js";

export type Backend = "embedded" | "real";

/** The backends a suite runs on: always the embedded ones, the real ones when configured. */
export const BACKENDS: Backend[] = REAL_DATABASE_URL && REAL_REDIS_URL ? ["embedded", "real"] : ["embedded"];

export const TEST_APPS = [
  { appId: "wxtestapp0000001", appSecret: "secret-one-never-logged" },
  { appId: "wxtestapp0000002", appSecret: "secret-two-never-logged" },
];

export interface LogLine {
  level: string;
  message: string;
  fields?: Record<string, unknown>;
}

/** A logger that keeps lines in memory, so tests can check what would be logged. */
export function memoryLogger(options: { debug?: boolean } = {}): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    if (level !== "debug" || options.debug) lines.push({ level, message, fields });
  };
  return {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    debugEnabled: options.debug ?? false,
  };
}

export interface TestApp {
  app: RunningApp;
  config: Readonly<Config>;
  sandbox: WechatSandbox;
  sandboxUrl: string;
  connect: ReturnType<typeof createClient<typeof IdentityService>>;
  grpc: ReturnType<typeof createGrpcClient>;
  /** AdminService over Connect and over grpc-js. */
  admin: ReturnType<typeof createClient<typeof AdminService>>;
  adminGrpc: ReturnType<typeof createAdminGrpcClient>;
  log: ReturnType<typeof memoryLogger>;
  httpUrl: string;
  /** Stops the service (servers and connections) but keeps its storage and the sandbox. */
  pause(): Promise<void>;
  /** Starts the paused service again on the same ports with the same storage and clock. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The whole service on free ports, against a WeChat sandbox server reached over a socket with
 * the real WeChat client. "real" uses a fresh database on the real Postgres and a unique key
 * prefix on the real Redis; "embedded" uses in-memory PGlite and the in-process store.
 */
export async function startTestApp(
  backend: Backend,
  env: RawEnv = {},
  options: {
    clock?: SharedClock;
    /** Another instance of the same deployment: its database and Redis key prefix, not new ones. */
    shareStorageWith?: TestApp;
    /** Embedded backend: PGlite in a temporary folder instead of memory, so resume() keeps the data. */
    persistentData?: boolean;
    /** The app's log, to watch it while the app is still starting. */
    log?: ReturnType<typeof memoryLogger>;
    /** Traces on, into this exporter. */
    spanExporter?: SpanExporter;
  } = {},
): Promise<TestApp> {
  const wechat = await startSandboxServer({ apps: TEST_APPS });
  const dataDir = options.persistentData ? await mkdtemp(join(tmpdir(), "identity-test-")) : undefined;
  const shared = options.shareStorageWith?.config;
  const database =
    backend === "real" && !shared ? await createScratchDatabase(REAL_DATABASE_URL as string) : undefined;
  const config = parseConfig({
    GRPC_PORT: "0",
    HTTP_PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: dataDir ?? "memory://",
    WECHAT_APPS: JSON.stringify(TEST_APPS),
    WECHAT_API_BASE_URL: wechat.baseUrl,
    WECHAT_TIMEOUT_MS: "1000",
    KEY_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString("base64"),
    // Every test of a file logs in from one address: the rate-limit tests set their own limits.
    RATE_LIMIT_LOGIN_FAILURES: "1000000",
    RATE_LIMIT_REFRESH_FAILURES: "1000000",
    // Tests stop their apps often: no balancer to warn (the shutdown test sets its own).
    SHUTDOWN_DELAY: "0s",
    SHUTDOWN_TIMEOUT: "2s",
    RATE_LIMIT_USER_DATA: "1000000",
    RATE_LIMIT_PHONE_NUMBER: "1000000",
    ...(database
      ? { DATABASE_URL: database.url, REDIS_URL: REAL_REDIS_URL, REDIS_KEY_PREFIX: `${uniqueName("t")}:` }
      : {}),
    ...(shared
      ? {
          DATABASE_URL: shared.databaseUrl ?? undefined,
          ...redisEnv(shared.redis),
          REDIS_KEY_PREFIX: shared.redisKeyPrefix,
        }
      : {}),
    ...env,
  });
  const log = options.log ?? memoryLogger();
  let app: RunningApp;
  try {
    app = await startApp(config, { log, clock: options.clock, spanExporter: options.spanExporter });
  } catch (err) {
    await wechat.close();
    await database?.drop();
    throw err;
  }
  let paused = false;
  const httpUrl = `http://127.0.0.1:${app.httpPort}`;
  const connect = createClient(
    IdentityService,
    createConnectTransport({ baseUrl: httpUrl, httpVersion: "1.1" }),
  );
  const grpc = createGrpcClient(`127.0.0.1:${app.grpcPort}`);
  const admin = createClient(AdminService, createConnectTransport({ baseUrl: httpUrl, httpVersion: "1.1" }));
  const adminGrpc = createAdminGrpcClient(`127.0.0.1:${app.grpcPort}`);
  return {
    get app() {
      return app;
    },
    config,
    sandbox: wechat.sandbox,
    sandboxUrl: wechat.baseUrl,
    connect,
    grpc,
    admin,
    adminGrpc,
    log,
    httpUrl,
    async pause() {
      if (config.dataDir === "memory://" && !config.databaseUrl)
        throw new Error("resume() would lose the in-memory database: start with persistentData");
      paused = true;
      await app.stop();
    },
    async resume() {
      app = await startApp(
        { ...config, grpcPort: app.grpcPort, httpPort: app.httpPort },
        { log, clock: options.clock },
      );
      paused = false;
    },
    async stop() {
      grpc.close();
      adminGrpc.close();
      if (!paused) await app.stop();
      await wechat.close();
      await database?.drop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The configuration that points another instance at the same Redis. */
function redisEnv(topology: RedisTopology | null): RawEnv {
  const list = (nodes: Array<{ host: string; port: number }>) =>
    nodes.map((n) => `${n.host}:${n.port}`).join(",");
  if (!topology) return {};
  switch (topology.kind) {
    case "node":
      return { REDIS_URL: topology.url };
    case "sentinel":
      return {
        REDIS_SENTINELS: list(topology.sentinels),
        REDIS_SENTINEL_MASTER: topology.master,
        REDIS_PASSWORD: topology.password,
      };
    case "cluster":
      return { REDIS_CLUSTER_NODES: list(topology.nodes), REDIS_PASSWORD: topology.password };
  }
}
