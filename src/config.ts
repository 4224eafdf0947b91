import { accessSync, constants } from "node:fs";
import { ADMIN_PERMISSION } from "./domain/permissions.js";
import type { AppCredentials, Role } from "./domain/ports.js";
import { AdminService } from "./gen/identity/v1/admin_pb.js";
import { IdentityService } from "./gen/identity/v1/identity_pb.js";
import type { LogLevel } from "./observability/logger.js";
import type { TracingSettings } from "./observability/tracing.js";
import { openFileLimit } from "./util/open-file-limit.js";

/**
 * Configuration in two steps: readEnv() takes the raw strings, parseConfig() checks them and
 * returns a frozen, typed Config. Tests call parseConfig() directly. Every error names the
 * variable at fault; all of them are reported at once.
 */

export const WECHAT_API_DEFAULT_BASE_URL = "https://api.weixin.qq.com";

/** The variables the service reads; the README's table and docker-compose.yml list the same. */
export const CONFIG_VARIABLES = [
  "NODE_ENV",
  "LOG_LEVEL",
  "HOST",
  "GRPC_PORT",
  "HTTP_PORT",
  "METRICS_PORT",
  "OTEL_TRACES_EXPORTER",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_SERVICE_NAME",
  "DATABASE_URL",
  "DATABASE_POOL_SIZE",
  "DATABASE_STATEMENT_TIMEOUT",
  "DATA_DIR",
  "REDIS_URL",
  "REDIS_KEY_PREFIX",
  "REDIS_SENTINELS",
  "REDIS_SENTINEL_MASTER",
  "REDIS_CLUSTER_NODES",
  "REDIS_PASSWORD",
  "WECHAT_APP_ID",
  "WECHAT_APP_SECRET",
  "WECHAT_APPS",
  "WECHAT_API_BASE_URL",
  "WECHAT_TIMEOUT_MS",
  "SANDBOX_ALLOW_REMOTE",
  "TOKEN_ISSUER",
  "TOKEN_AUDIENCE",
  "ACCESS_TOKEN_TTL",
  "REFRESH_TOKEN_IDLE_TTL",
  "SESSION_ABSOLUTE_TTL",
  "TOKEN_LEEWAY",
  "REFRESH_TOKEN_REUSE_GRACE",
  "SESSION_RETENTION",
  "KEY_ENCRYPTION_KEY",
  "SIGNING_KEY_ROTATION_INTERVAL",
  "SIGNING_KEY_PUBLISH_AHEAD",
  "VERIFY_CACHE_BYTES",
  "WATCH_REVOCATIONS_MAX_BEHIND",
  "MAX_REQUEST_BYTES",
  "RATE_LIMIT_LOGIN_FAILURES",
  "RATE_LIMIT_REFRESH_FAILURES",
  "RATE_LIMIT_USER_DATA",
  "RATE_LIMIT_PHONE_NUMBER",
  "PROFILE_DEFAULT_NICKNAME",
  "PROFILE_DEFAULT_AVATAR_URL",
  "ROLE_PERMISSIONS",
  "STAFF_APP_ID",
  "PASSWORD_MIN_LENGTH",
  "PASSWORD_HASH_MEMORY_KIB",
  "PASSWORD_HASH_ITERATIONS",
  "RATE_LIMIT_PASSWORD_FAILURES",
  "AUDIT_RETENTION",
  "CALLERS",
  "CALLER_AUTH_BY_NETWORK",
  "TLS_CERT_FILE",
  "TLS_KEY_FILE",
  "TLS_CLIENT_CA_FILE",
  "MAX_CONNECTIONS",
  "MAX_CONNECTIONS_PER_ADDRESS",
  "CONNECTION_FIRST_REQUEST_TIMEOUT",
  "CONNECTION_IDLE_TIMEOUT",
  "SHUTDOWN_DELAY",
  "SHUTDOWN_TIMEOUT",
  "STARTUP_TIMEOUT",
  "REQUEST_TIMEOUT",
  "STORAGE_MAX_IN_FLIGHT",
] as const;

/** Where the shared Redis is: one node (REDIS_URL), a Sentinel set, or a Cluster. */
export type RedisTopology =
  | { kind: "node"; url: string }
  | {
      kind: "sentinel";
      sentinels: Array<{ host: string; port: number }>;
      master: string;
      password: string | undefined;
    }
  | { kind: "cluster"; nodes: Array<{ host: string; port: number }>; password: string | undefined };

export type RawEnv = Partial<Record<(typeof CONFIG_VARIABLES)[number], string>>;

export interface Config {
  production: boolean;
  logLevel: LogLevel;
  host: string;
  grpcPort: number;
  httpPort: number;
  /** Where /metrics is served: its own port, or null for the HTTP port. */
  metricsPort: number | null;
  /** OpenTelemetry traces: off, or OTLP over HTTP to a collector. */
  tracing: TracingSettings;
  /** null: embedded PGlite in dataDir. */
  databaseUrl: string | null;
  /** Connections to DATABASE_URL per instance (postgres.js pipelines queries on each). */
  databasePoolSize: number;
  /** Postgres ends a statement that runs or waits on a lock longer (statement_timeout). */
  databaseStatementTimeoutMs: number;
  dataDir: string;
  /** null: the in-process store. */
  /** Redis, one node, a Sentinel-managed master or a Cluster; null: the in-process store. */
  redis: RedisTopology | null;
  redisKeyPrefix: string;
  /** "sandbox": no credentials given, the built-in WeChat stand-in serves a generated app. */
  wechat:
    | { mode: "real"; apps: AppCredentials[]; baseUrl: string; timeoutMs: number }
    | {
        mode: "sandbox";
        apps: AppCredentials[];
        timeoutMs: number;
        /** The sandbox answers only loopback callers unless this is set. */
        allowRemote: boolean;
      };
  /** Durations in milliseconds, like every duration the code passes around. */
  tokens: {
    issuer: string;
    /** null: each app is its own audience (the appid). */
    audience: string | null;
    accessTokenTtlMs: number;
    refreshIdleTtlMs: number;
    sessionAbsoluteTtlMs: number;
    /** Clock skew tolerated on exp, nbf and iat. */
    leewayMs: number;
    /** How long a just-spent refresh token may be presented again (parallel refreshes); 0 = never. */
    refreshReuseGraceMs: number;
  };
  /** 32 bytes, or null to use (or create) the key file in dataDir (refused in production). */
  keyEncryptionKey: Buffer | null;
  signingKeys: {
    /** A new signing key is made when the newest is this old; 0 = only by `npm run keys:rotate`. */
    rotationIntervalMs: number;
    /** How long a new key is published in JWKS before it signs. */
    publishAheadMs: number;
  };
  /** An ended session (revoked or past its absolute expiry) is deleted this long after it ended. */
  sessionRetentionMs: number;
  /** Most bytes each cache of verified tokens holds (the gRPC thread's and the main thread's). */
  verifyCacheBytes: number;
  maxRequestBytes: number;
  /** What each port lets clients hold. */
  connections: {
    maxConnections: number;
    maxPerAddress: number;
    /** A connection that completes no request within this is closed. */
    firstRequestTimeoutMs: number;
    /** A connection without a call this long is closed (HTTP/2 and gRPC: GOAWAY). */
    idleTimeoutMs: number;
  };
  /** null: callers are not checked (outside production, or CALLER_AUTH_BY_NETWORK). */
  callers: CallerConfig[] | null;
  /** Calls that may wait on Postgres, and on Redis, at once; past it, UNAVAILABLE at once. */
  storageMaxInFlight: number;
  /** Messages a WatchRevocations subscriber may fall behind before it is dropped (SUBSCRIBER_TOO_SLOW). */
  watchMaxBehind: number;
  /** The deadline of a call whose caller set none (grpc-timeout, connect-timeout-ms). */
  requestTimeoutMs: number;
  /** How long a start waits for Postgres and Redis to answer before it gives up. */
  startupTimeoutMs: number;
  /** What SIGTERM does (app/servers.ts). */
  shutdown: {
    /** Health says NOT_SERVING this long while calls are still served, so balancers stop sending. */
    delayMs: number;
    /** Then calls in flight get this long to finish before connections are cut. */
    drainTimeoutMs: number;
  };
  /**
   * TLS on both ports (PEM files); null: cleartext. With clientCaFile, every connection must
   * present a certificate that CA signed (mTLS), and its subject CN names the caller in CALLERS.
   */
  tls: { certFile: string; keyFile: string; clientCaFile: string | null } | null;
  /** Per minute; what is counted, and per what, is in docs/security.md. */
  rateLimits: {
    /** Failed Logins per end user's address or device (the caller's address without ClientInfo). */
    loginFailures: number;
    /** Refreshes with an unknown or spent refresh token, per end user as for Logins. */
    refreshFailures: number;
    /** DecryptUserData calls per user. */
    userData: number;
    /** GetPhoneNumber calls per user (WeChat bills each). */
    phoneNumbers: number;
  };
  /** What a user who never set a profile (UpdateProfile) is shown as. */
  profileDefaults: { nickname: string; avatarUrl: string };
  /** Staff accounts, roles and the audit log (docs/accounts.md). */
  accounts: {
    /** Roles added to the roles table at start when missing (stored ones are edited with AdminService). */
    rolePermissions: Role[];
    /** The app_id of LoginWithPassword's sessions and tokens. */
    staffAppId: string;
    passwordMinLength: number;
    /** argon2id's cost; parallelism is 1. */
    passwordHash: { memoryKib: number; iterations: number };
    /** Failed password logins per minute, per account and per address. */
    passwordFailures: number;
    /** Audit rows are deleted this long after they were written. */
    auditRetentionMs: number;
  };
}

/**
 * One caller of the service: its name (for the logs, and the subject CN of its client
 * certificate under mTLS), its bearer key, the methods it may call.
 */
export interface CallerConfig {
  name: string;
  /**
   * The key itself, or keySha256: its SHA-256 in hex, so the configuration need not hold it.
   * Neither: the caller is known by its client certificate only (TLS_CLIENT_CA_FILE).
   */
  key?: string;
  keySha256?: string;
  /** Short method names ("Login", "VerifyToken") or ["*"]. */
  methods: string[];
}

/** The methods a caller may be given: each method's name as the contract has it, and every AdminService method. */
export const METHOD_NAMES: readonly string[] = [
  ...IdentityService.methods.map((m) => m.name),
  ...AdminService.methods.map((m) => m.name),
  "AdminService.*",
];

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

/** Variables that are gone, with what took their place: set, they stop the start rather than be ignored. */
const RETIRED_VARIABLES: Record<string, string> = {
  VERIFY_CACHE_SIZE: "replaced by VERIFY_CACHE_BYTES (the cache of verified tokens is bounded in bytes)",
};

export function readEnv(env: NodeJS.ProcessEnv = process.env): RawEnv {
  const retired = Object.entries(RETIRED_VARIABLES).filter(([name]) => env[name] !== undefined);
  if (retired.length > 0) throw new ConfigError(retired.map(([name, instead]) => `${name}: ${instead}`));
  const raw: RawEnv = {};
  for (const name of CONFIG_VARIABLES) {
    const value = env[name];
    if (value !== undefined && value !== "") raw[name] = value;
  }
  return raw;
}

const DURATION = /^(\d+)(ms|s|m|h|d)?$/;
const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
const MIB = 1024 * 1024;
const BYTE_SIZE = /^(\d+)\s*(KiB|MiB|GiB)?$/i;
const BYTE_UNITS: Record<string, number> = { kib: 1024, mib: MIB, gib: 1024 * MIB };

export function parseConfig(raw: RawEnv): Readonly<Config> {
  const problems: string[] = [];
  const defaultConnections = defaultConnectionLimits();

  function integer(name: keyof RawEnv, fallback: number, min: number, max: number): number {
    const value = raw[name];
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      problems.push(`${name}: expected a whole number from ${min} to ${max}, got "${value}"`);
      return fallback;
    }
    return n;
  }

  /** A size in bytes: 65536, 64KiB, 32MiB or 1GiB. */
  function byteSize(name: keyof RawEnv, fallback: number, min: number, max: number): number {
    const value = raw[name];
    if (value === undefined) return fallback;
    const match = BYTE_SIZE.exec(value.trim());
    const n = match ? Number(match[1]) * (BYTE_UNITS[match[2]?.toLowerCase() ?? ""] ?? 1) : Number.NaN;
    if (!(n >= min && n <= max)) {
      problems.push(
        `${name}: expected a size like 32MiB or 1GiB, from ${min} to ${max} bytes, got "${value}"`,
      );
      return fallback;
    }
    return n;
  }

  function duration(name: keyof RawEnv, fallbackSeconds: number, minSeconds = 1): number {
    const value = raw[name];
    if (value === undefined) return fallbackSeconds;
    const match = DURATION.exec(value.trim());
    const seconds = match ? Number(match[1]) * (UNIT_SECONDS[match[2] ?? "s"] ?? 1) : Number.NaN;
    if (!(seconds >= minSeconds)) {
      problems.push(
        `${name}: expected a duration like 900s, 15m, 2h or 7d (at least ${minSeconds}s), got "${value}"`,
      );
      return fallbackSeconds;
    }
    return Math.floor(seconds);
  }

  function flag(name: keyof RawEnv, fallback: boolean): boolean {
    const value = raw[name];
    if (value === undefined) return fallback;
    if (value === "true" || value === "false") return value === "true";
    problems.push(`${name}: expected true or false, got "${value}"`);
    return fallback;
  }

  /** "host:port,host:port" -> addresses; null when unset. */
  function addresses(name: keyof RawEnv): Array<{ host: string; port: number }> | null {
    const value = raw[name];
    if (value === undefined) return null;
    const parsed = value.split(",").map((part) => {
      const match = /^\s*([^\s:,]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\s*$/.exec(part);
      const port = Number(match?.[2]);
      return match && port > 0 && port < 65536
        ? { host: (match[1] as string).replace(/^\[|\]$/g, ""), port }
        : null;
    });
    if (parsed.some((a) => a === null)) {
      problems.push(`${name}: expected host:port[,host:port...], got "${value}"`);
      return null;
    }
    return parsed as Array<{ host: string; port: number }>;
  }

  /** One of REDIS_URL, REDIS_SENTINELS (with REDIS_SENTINEL_MASTER) or REDIS_CLUSTER_NODES. */
  function redisTopology(): RedisTopology | null {
    const given = (["REDIS_URL", "REDIS_SENTINELS", "REDIS_CLUSTER_NODES"] as const).filter(
      (name) => raw[name] !== undefined,
    );
    if (given.length > 1) {
      problems.push(`${given.join(", ")}: set one of them (one Redis node, a Sentinel set or a Cluster)`);
      return null;
    }
    const password = raw.REDIS_PASSWORD;
    const sentinels = addresses("REDIS_SENTINELS");
    if (sentinels)
      return { kind: "sentinel", sentinels, master: raw.REDIS_SENTINEL_MASTER ?? "mymaster", password };
    const nodes = addresses("REDIS_CLUSTER_NODES");
    if (nodes) return { kind: "cluster", nodes, password };
    const single = url("REDIS_URL", ["redis:", "rediss:"]);
    return single ? { kind: "node", url: single } : null;
  }

  function oneOf<T extends string>(name: keyof RawEnv, allowed: readonly T[], fallback: T): T {
    const value = raw[name];
    if (value === undefined) return fallback;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    problems.push(`${name}: expected ${allowed.join(" or ")}, got "${value}"`);
    return fallback;
  }

  function url(name: keyof RawEnv, protocols: string[]): string | null {
    const value = raw[name];
    if (value === undefined) return null;
    try {
      const parsed = new URL(value);
      if (!protocols.includes(parsed.protocol)) throw new Error();
    } catch {
      // The value may hold a password: name the variable, not the value.
      problems.push(`${name}: expected a ${protocols.map((p) => p.replace(":", "://")).join(" or ")} URL`);
      return null;
    }
    return value;
  }

  const production = raw.NODE_ENV === "production";
  const logLevel = (raw.LOG_LEVEL ?? "info") as LogLevel;
  if (!["debug", "info", "warn", "error", "silent"].includes(logLevel)) {
    problems.push(`LOG_LEVEL: expected debug, info, warn, error or silent, got "${raw.LOG_LEVEL}"`);
  }

  const apps = parseApps(raw, problems);
  const timeoutMs = integer("WECHAT_TIMEOUT_MS", 5000, 100, 60_000);
  let wechat: Config["wechat"];
  if (apps.length > 0) {
    const baseUrl = url("WECHAT_API_BASE_URL", ["https:", "http:"]) ?? WECHAT_API_DEFAULT_BASE_URL;
    wechat = { mode: "real", apps, baseUrl, timeoutMs };
  } else {
    if (production) {
      problems.push("WECHAT_APP_ID: required in production (with WECHAT_APP_SECRET), or set WECHAT_APPS");
    }
    wechat = {
      mode: "sandbox",
      apps: [{ appId: "wxsandbox0000001", appSecret: "sandbox-secret" }],
      timeoutMs,
      allowRemote: flag("SANDBOX_ALLOW_REMOTE", false),
    };
  }

  let keyEncryptionKey: Buffer | null = null;
  if (raw.KEY_ENCRYPTION_KEY !== undefined) {
    const decoded = Buffer.from(raw.KEY_ENCRYPTION_KEY, "base64");
    if (decoded.length !== 32) {
      problems.push("KEY_ENCRYPTION_KEY: expected 32 bytes in base64 (openssl rand -base64 32)");
    } else {
      keyEncryptionKey = decoded;
    }
  } else if (production) {
    problems.push("KEY_ENCRYPTION_KEY: required in production (openssl rand -base64 32)");
  }

  const SECOND = 1000;
  const tokens = {
    issuer: raw.TOKEN_ISSUER ?? "wechat-identity",
    audience: raw.TOKEN_AUDIENCE ?? null,
    accessTokenTtlMs: duration("ACCESS_TOKEN_TTL", 2 * 3600) * SECOND,
    refreshIdleTtlMs: duration("REFRESH_TOKEN_IDLE_TTL", 7 * 86400) * SECOND,
    sessionAbsoluteTtlMs: duration("SESSION_ABSOLUTE_TTL", 30 * 86400) * SECOND,
    leewayMs: integer("TOKEN_LEEWAY", 5, 0, 300) * SECOND,
    refreshReuseGraceMs: integer("REFRESH_TOKEN_REUSE_GRACE", 10, 0, 120) * SECOND,
  };
  if (tokens.accessTokenTtlMs > 86400 * SECOND)
    problems.push("ACCESS_TOKEN_TTL: at most 24h (access tokens cannot be recalled offline)");
  if (tokens.refreshIdleTtlMs > tokens.sessionAbsoluteTtlMs) {
    problems.push("REFRESH_TOKEN_IDLE_TTL: must not exceed SESSION_ABSOLUTE_TTL");
  }

  const signingKeys = {
    rotationIntervalMs:
      raw.SIGNING_KEY_ROTATION_INTERVAL === undefined
        ? 0
        : duration("SIGNING_KEY_ROTATION_INTERVAL", 0) * SECOND,
    publishAheadMs: duration("SIGNING_KEY_PUBLISH_AHEAD", 900) * SECOND,
  };
  if (signingKeys.rotationIntervalMs !== 0 && signingKeys.rotationIntervalMs < 3600 * SECOND)
    problems.push("SIGNING_KEY_ROTATION_INTERVAL: at least 1h (or unset for rotation by command only)");
  // Every instance reloads keys within a minute and JWKS may be cached for five: a new key must be
  // known everywhere before anything signed with it reaches a verifier.
  if (signingKeys.publishAheadMs < 360 * SECOND)
    problems.push("SIGNING_KEY_PUBLISH_AHEAD: at least 6m (JWKS max-age 5m + key reload 1m)");

  const config: Config = {
    production,
    logLevel,
    host: raw.HOST ?? "0.0.0.0",
    grpcPort: integer("GRPC_PORT", 50051, 0, 65535),
    httpPort: integer("HTTP_PORT", 8080, 0, 65535),
    metricsPort: raw.METRICS_PORT === undefined ? null : integer("METRICS_PORT", 9464, 0, 65535),
    tracing: {
      exporter: oneOf("OTEL_TRACES_EXPORTER", ["none", "otlp"] as const, "none"),
      endpoint: url("OTEL_EXPORTER_OTLP_ENDPOINT", ["http:", "https:"]) ?? "http://localhost:4318",
      serviceName: raw.OTEL_SERVICE_NAME ?? "wechat-identity",
    },
    databaseUrl: url("DATABASE_URL", ["postgres:", "postgresql:"]),
    // postgres.js pipelines queries on each connection, so a few carry the load (docs/benchmarks.md).
    databasePoolSize: integer("DATABASE_POOL_SIZE", 4, 1, 1000),
    databaseStatementTimeoutMs: duration("DATABASE_STATEMENT_TIMEOUT", 5) * SECOND,
    dataDir: raw.DATA_DIR ?? "./.data",
    redis: redisTopology(),
    redisKeyPrefix: raw.REDIS_KEY_PREFIX ?? "identity:",
    wechat,
    tokens,
    keyEncryptionKey,
    signingKeys,
    sessionRetentionMs: duration("SESSION_RETENTION", 7 * 86400, 86400) * SECOND,
    verifyCacheBytes: byteSize("VERIFY_CACHE_BYTES", 32 * MIB, 64 * 1024, 64 * 1024 * MIB),
    maxRequestBytes: integer("MAX_REQUEST_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
    callers: parseCallers(raw, problems),
    tls: parseTls(raw, problems),
    startupTimeoutMs: duration("STARTUP_TIMEOUT", 60) * SECOND,
    requestTimeoutMs: duration("REQUEST_TIMEOUT", 15) * SECOND,
    storageMaxInFlight: integer("STORAGE_MAX_IN_FLIGHT", 500, 1, 100_000),
    watchMaxBehind: integer("WATCH_REVOCATIONS_MAX_BEHIND", 1000, 1, 1_000_000),
    shutdown: {
      delayMs: duration("SHUTDOWN_DELAY", 5, 0) * SECOND,
      drainTimeoutMs: duration("SHUTDOWN_TIMEOUT", 20) * SECOND,
    },
    connections: {
      maxConnections: integer("MAX_CONNECTIONS", defaultConnections.maxConnections, 1, 10_000_000),
      maxPerAddress: integer("MAX_CONNECTIONS_PER_ADDRESS", defaultConnections.maxPerAddress, 1, 10_000_000),
      firstRequestTimeoutMs: duration("CONNECTION_FIRST_REQUEST_TIMEOUT", 10) * SECOND,
      idleTimeoutMs: duration("CONNECTION_IDLE_TIMEOUT", 300) * SECOND,
    },
    rateLimits: {
      loginFailures: integer("RATE_LIMIT_LOGIN_FAILURES", 20, 1, 1_000_000),
      refreshFailures: integer("RATE_LIMIT_REFRESH_FAILURES", 20, 1, 1_000_000),
      userData: integer("RATE_LIMIT_USER_DATA", 120, 1, 1_000_000),
      phoneNumbers: integer("RATE_LIMIT_PHONE_NUMBER", 10, 1, 1_000_000),
    },
    profileDefaults: {
      // What WeChat itself shows for a user who has not shared a name.
      nickname: raw.PROFILE_DEFAULT_NICKNAME ?? "微信用户",
      avatarUrl: url("PROFILE_DEFAULT_AVATAR_URL", ["https:"]) ?? "",
    },
    accounts: {
      rolePermissions: parseRolePermissions(raw, problems),
      staffAppId: raw.STAFF_APP_ID ?? "staff",
      passwordMinLength: integer("PASSWORD_MIN_LENGTH", 12, 8, 256),
      // OWASP's argon2id floor (19 MiB, 2 passes): ~25 ms a hash on this machine (bench:password).
      passwordHash: {
        memoryKib: integer("PASSWORD_HASH_MEMORY_KIB", 19_456, 8_192, 1_048_576),
        iterations: integer("PASSWORD_HASH_ITERATIONS", 2, 1, 20),
      },
      passwordFailures: integer("RATE_LIMIT_PASSWORD_FAILURES", 10, 1, 1_000_000),
      auditRetentionMs: duration("AUDIT_RETENTION", 365 * 86400, 86400) * SECOND,
    },
  };
  if (!APP_ID.test(config.accounts.staffAppId)) problems.push("STAFF_APP_ID: 1 to 64 of A-Z a-z 0-9 _ -");
  if (config.wechat.apps.some((app) => app.appId === config.accounts.staffAppId))
    problems.push("STAFF_APP_ID: must differ from every WeChat app id");
  const nicknameLength = [...config.profileDefaults.nickname].length;
  if (nicknameLength < 1 || nicknameLength > 32)
    problems.push("PROFILE_DEFAULT_NICKNAME: 1 to 32 characters");
  const callerAuthByNetwork = flag("CALLER_AUTH_BY_NETWORK", false); // read always, so a typo is reported
  if (production && config.callers === null && !callerAuthByNetwork) {
    problems.push(
      "CALLERS: required in production, with a key per caller or client certificates (TLS_CLIENT_CA_FILE), or CALLER_AUTH_BY_NETWORK=true where the network alone decides who reaches the ports",
    );
  }
  if (config.tls && config.wechat.mode === "sandbox") {
    // The built-in sandbox is reached through the HTTP port, which would then want our certificate.
    problems.push(
      "TLS_CERT_FILE: the built-in WeChat sandbox runs on a cleartext port only; configure WeChat apps (WECHAT_APPS, WECHAT_API_BASE_URL for a sandbox server)",
    );
  }
  if (config.tls?.clientCaFile && config.callers === null) {
    problems.push(
      "TLS_CLIENT_CA_FILE: needs CALLERS, which the certificates' names (subject CN) are matched against",
    );
  }
  const certificateOnly =
    config.callers?.filter((c) => c.key === undefined && c.keySha256 === undefined) ?? [];
  if (certificateOnly.length > 0 && !config.tls?.clientCaFile) {
    problems.push(
      `CALLERS: ${certificateOnly.map((c) => c.name).join(", ")} has no key: callers known by certificate need TLS_CLIENT_CA_FILE`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

const APP_ID = /^[A-Za-z0-9_-]{1,64}$/;

function parseTls(raw: RawEnv, problems: string[]): Config["tls"] {
  const { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, TLS_CLIENT_CA_FILE: clientCaFile } = raw;
  if (certFile === undefined && keyFile === undefined) {
    if (clientCaFile !== undefined) problems.push("TLS_CLIENT_CA_FILE: needs TLS_CERT_FILE and TLS_KEY_FILE");
    return null;
  }
  if (certFile === undefined || keyFile === undefined) {
    const [missing, given] =
      certFile === undefined ? ["TLS_CERT_FILE", "TLS_KEY_FILE"] : ["TLS_KEY_FILE", "TLS_CERT_FILE"];
    problems.push(`${missing}: needed with ${given} (PEM files: set both or neither)`);
    return null;
  }
  for (const [name, file] of [
    ["TLS_CERT_FILE", certFile],
    ["TLS_KEY_FILE", keyFile],
    ["TLS_CLIENT_CA_FILE", clientCaFile],
  ] as const) {
    if (file === undefined) continue;
    try {
      accessSync(file, constants.R_OK);
    } catch {
      problems.push(`${name}: cannot read ${file}`);
    }
  }
  return { certFile, keyFile, clientCaFile: clientCaFile ?? null };
}

function parseCallers(raw: RawEnv, problems: string[]): CallerConfig[] | null {
  if (raw.CALLERS === undefined) return null;
  const problem = () => {
    // Never echo the value: it holds keys.
    problems.push(
      `CALLERS: expected a JSON list like [{"name":"orders","key":"...","methods":["VerifyToken"]}] (key of at least 16 characters, or keySha256 in hex, or neither for a caller known by its client certificate; methods from ${METHOD_NAMES.join(", ")} or "*")`,
    );
    return [];
  };
  let list: unknown;
  try {
    list = JSON.parse(raw.CALLERS);
  } catch {
    return problem();
  }
  if (!Array.isArray(list) || list.length === 0) return problem();
  const callers: CallerConfig[] = [];
  for (const entry of list) {
    const { name, key, keySha256, methods } = (entry ?? {}) as Record<string, unknown>;
    const validKey =
      (typeof key === "string" && key.length >= 16 && keySha256 === undefined) ||
      (key === undefined && typeof keySha256 === "string" && /^[0-9a-f]{64}$/i.test(keySha256)) ||
      (key === undefined && keySha256 === undefined);
    const validMethods =
      Array.isArray(methods) &&
      methods.length > 0 &&
      methods.every((m) => m === "*" || (METHOD_NAMES as readonly unknown[]).includes(m));
    if (typeof name !== "string" || name.length === 0 || !validKey || !validMethods) return problem();
    callers.push({
      name,
      ...(typeof key === "string" ? { key } : {}),
      ...(typeof keySha256 === "string" ? { keySha256: keySha256.toLowerCase() } : {}),
      methods: methods as string[],
    });
  }
  if (new Set(callers.map((c) => c.name)).size !== callers.length)
    problems.push("CALLERS: a name appears twice");
  return callers;
}

function parseApps(raw: RawEnv, problems: string[]): AppCredentials[] {
  if (raw.WECHAT_APPS !== undefined) {
    if (raw.WECHAT_APP_ID !== undefined)
      problems.push("WECHAT_APPS: set either WECHAT_APPS or WECHAT_APP_ID, not both");
    let list: unknown;
    try {
      list = JSON.parse(raw.WECHAT_APPS);
    } catch {
      list = null;
    }
    const valid =
      Array.isArray(list) &&
      list.length > 0 &&
      list.every(
        (a) =>
          typeof a?.appId === "string" &&
          APP_ID.test(a.appId) &&
          typeof a?.appSecret === "string" &&
          a.appSecret,
      );
    if (!valid) {
      problems.push('WECHAT_APPS: expected a JSON list like [{"appId":"wx...","appSecret":"..."}]');
      return [];
    }
    const apps = (list as AppCredentials[]).map(({ appId, appSecret }) => ({ appId, appSecret }));
    if (new Set(apps.map((a) => a.appId)).size !== apps.length)
      problems.push("WECHAT_APPS: an appId appears twice");
    return apps;
  }
  if (raw.WECHAT_APP_ID === undefined && raw.WECHAT_APP_SECRET === undefined) return [];
  if (raw.WECHAT_APP_ID === undefined || !APP_ID.test(raw.WECHAT_APP_ID)) {
    problems.push("WECHAT_APP_ID: required with WECHAT_APP_SECRET, letters, digits, _ and - only");
    return [];
  }
  if (raw.WECHAT_APP_SECRET === undefined) {
    problems.push("WECHAT_APP_SECRET: required with WECHAT_APP_ID");
    return [];
  }
  return [{ appId: raw.WECHAT_APP_ID, appSecret: raw.WECHAT_APP_SECRET }];
}

/**
 * Defaults from the open-file limit: each of the two ports may hold somewhat under half of what
 * is left after a reserve for the database, Redis, WeChat and files; one address a quarter of that.
 */
export function defaultConnectionLimits(fileLimit = openFileLimit()): {
  maxConnections: number;
  maxPerAddress: number;
} {
  const maxConnections = Math.max(64, Math.floor(((fileLimit - 256) / 2) * 0.9));
  return { maxConnections, maxPerAddress: Math.max(16, Math.floor(maxConnections / 4)) };
}

const ROLE_NAME = /^[a-z0-9][a-z0-9:_-]{0,63}$/;
const PERMISSION = /^[a-z0-9*][a-z0-9:_.*-]{0,127}$/;

/** ROLE_PERMISSIONS: {"role": ["permission", ...]}; by default the admin role administers identities. */
function parseRolePermissions(raw: RawEnv, problems: string[]): Role[] {
  if (raw.ROLE_PERMISSIONS === undefined) return [{ name: "admin", permissions: [ADMIN_PERMISSION] }];
  let value: unknown;
  try {
    value = JSON.parse(raw.ROLE_PERMISSIONS);
  } catch {
    value = undefined;
  }
  const entries =
    value !== null && typeof value === "object" && !Array.isArray(value) ? Object.entries(value) : [];
  const valid =
    entries.length > 0 &&
    entries.every(
      ([name, permissions]) =>
        ROLE_NAME.test(name) &&
        Array.isArray(permissions) &&
        permissions.every((p) => typeof p === "string" && PERMISSION.test(p)),
    );
  if (!valid) {
    problems.push(
      'ROLE_PERMISSIONS: expected JSON like {"admin":["identity:admin"],"ops":["order:read:all"]} (role names: lowercase letters, digits, : _ -)',
    );
    return [];
  }
  return entries.map(([name, permissions]) => ({
    name,
    permissions: [...new Set(permissions as string[])].sort(),
  }));
}
