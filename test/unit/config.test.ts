import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig, readEnv } from "../../src/config.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "tls");
const TLS = {
  TLS_CERT_FILE: join(FIXTURES, "server.pem"),
  TLS_KEY_FILE: join(FIXTURES, "server.key"),
  TLS_CLIENT_CA_FILE: join(FIXTURES, "ca.pem"),
};
const APPS = JSON.stringify([{ appId: "wx1", appSecret: "s" }]);

function problems(raw: Record<string, string>): string[] {
  try {
    parseConfig(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe("configuration", () => {
  it("runs with nothing set: embedded database, in-process store, WeChat sandbox", () => {
    const config = parseConfig({});
    expect(config).toMatchObject({
      grpcPort: 50051,
      httpPort: 8080,
      databaseUrl: null,
      databasePoolSize: 4,
      redis: null,
      dataDir: "./.data",
      wechat: { mode: "sandbox" },
      tokens: {
        accessTokenTtlMs: 7200 * 1000,
        refreshIdleTtlMs: 7 * 86400 * 1000,
        sessionAbsoluteTtlMs: 30 * 86400 * 1000,
      },
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("shows users who never set a profile as the defaults, an https avatar and a name of 1-32 characters", () => {
    expect(parseConfig({}).profileDefaults).toEqual({ nickname: "微信用户", avatarUrl: "" });
    expect(
      parseConfig({
        PROFILE_DEFAULT_NICKNAME: "新朋友",
        PROFILE_DEFAULT_AVATAR_URL: "https://cdn.example/a.png",
      }).profileDefaults,
    ).toEqual({ nickname: "新朋友", avatarUrl: "https://cdn.example/a.png" });
    expect(problems({ PROFILE_DEFAULT_AVATAR_URL: "http://cdn.example/a.png" })).toEqual([
      "PROFILE_DEFAULT_AVATAR_URL: expected a https:// URL",
    ]);
    expect(problems({ PROFILE_DEFAULT_NICKNAME: "" })).toEqual([
      "PROFILE_DEFAULT_NICKNAME: 1 to 32 characters",
    ]);
  });

  it("rotates signing keys by command only unless a schedule is set, and publishes them ahead", () => {
    expect(parseConfig({}).signingKeys).toEqual({ rotationIntervalMs: 0, publishAheadMs: 900 * 1000 });
    expect(parseConfig({ SIGNING_KEY_ROTATION_INTERVAL: "30d" }).signingKeys.rotationIntervalMs).toBe(
      30 * 86400 * 1000,
    );
    expect(problems({ SIGNING_KEY_ROTATION_INTERVAL: "10m" })).toEqual([
      expect.stringMatching(/^SIGNING_KEY_ROTATION_INTERVAL: at least 1h/),
    ]);
    expect(problems({ SIGNING_KEY_PUBLISH_AHEAD: "1m" })).toEqual([
      expect.stringMatching(/^SIGNING_KEY_PUBLISH_AHEAD: at least 6m/),
    ]);
  });

  it("uses real WeChat with one app's credentials", () => {
    const config = parseConfig({ WECHAT_APP_ID: "wx123", WECHAT_APP_SECRET: "s" });
    expect(config.wechat).toEqual({
      mode: "real",
      apps: [{ appId: "wx123", appSecret: "s" }],
      baseUrl: "https://api.weixin.qq.com",
      timeoutMs: 5000,
    });
  });

  it("takes several apps from WECHAT_APPS", () => {
    const apps = [
      { appId: "wxa", appSecret: "1" },
      { appId: "wxb", appSecret: "2" },
    ];
    expect(parseConfig({ WECHAT_APPS: JSON.stringify(apps) }).wechat.apps).toEqual(apps);
  });

  it("parses durations with units", () => {
    const config = parseConfig({
      ACCESS_TOKEN_TTL: "15m",
      REFRESH_TOKEN_IDLE_TTL: "2d",
      SESSION_ABSOLUTE_TTL: "90d",
    });
    expect(config.tokens).toMatchObject({ accessTokenTtlMs: 900 * 1000, refreshIdleTtlMs: 172800 * 1000 });
  });

  it.each([
    [{ GRPC_PORT: "http" }, "GRPC_PORT"],
    [{ HTTP_PORT: "70000" }, "HTTP_PORT"],
    [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL"],
    [{ REDIS_URL: "nonsense" }, "REDIS_URL"],
    [{ REDIS_SENTINELS: "sentinel-without-port" }, "REDIS_SENTINELS"],
    [{ REDIS_CLUSTER_NODES: "a:1,b:99999" }, "REDIS_CLUSTER_NODES"],
    [{ REDIS_URL: "redis://r:6379", REDIS_CLUSTER_NODES: "a:7000" }, "REDIS_URL, REDIS_CLUSTER_NODES"],
    [{ OTEL_TRACES_EXPORTER: "jaeger" }, "OTEL_TRACES_EXPORTER"],
    [{ METRICS_PORT: "x" }, "METRICS_PORT"],
    [{ WECHAT_APP_ID: "wx1" }, "WECHAT_APP_SECRET"],
    [{ WECHAT_APP_SECRET: "s" }, "WECHAT_APP_ID"],
    [{ WECHAT_APPS: "[{}]" }, "WECHAT_APPS"],
    [{ WECHAT_APPS: "not json" }, "WECHAT_APPS"],
    [{ ACCESS_TOKEN_TTL: "soon" }, "ACCESS_TOKEN_TTL"],
    [{ ACCESS_TOKEN_TTL: "2d" }, "ACCESS_TOKEN_TTL"],
    [{ REFRESH_TOKEN_IDLE_TTL: "60d" }, "REFRESH_TOKEN_IDLE_TTL"],
    [{ KEY_ENCRYPTION_KEY: "c2hvcnQ=" }, "KEY_ENCRYPTION_KEY"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ SANDBOX_ALLOW_REMOTE: "yes" }, "SANDBOX_ALLOW_REMOTE"],
    [{ CALLER_AUTH_BY_NETWORK: "yes" }, "CALLER_AUTH_BY_NETWORK"],
    [{ NODE_ENV: "production" }, "WECHAT_APP_ID"],
    [{ NODE_ENV: "production", WECHAT_APP_ID: "wx1", WECHAT_APP_SECRET: "s" }, "KEY_ENCRYPTION_KEY"],
    [{ NODE_ENV: "production", WECHAT_APP_ID: "wx1", WECHAT_APP_SECRET: "s" }, "CALLERS"],
    [{ CALLERS: "[]" }, "CALLERS"],
    [{ CALLERS: '[{"name":"x","key":"short","methods":["*"]}]' }, "CALLERS"],
    [{ CALLERS: '[{"name":"x","key":"long-enough-key-123","methods":["Nope"]}]' }, "CALLERS"],
    // A caller known by certificate only, without a client CA to verify one.
    [{ CALLERS: '[{"name":"orders","methods":["VerifyToken"]}]' }, "CALLERS"],
    [{ TLS_CERT_FILE: TLS.TLS_CERT_FILE }, "TLS_KEY_FILE"],
    [{ ...TLS, WECHAT_APPS: APPS, TLS_KEY_FILE: "/nonexistent/server.key" }, "TLS_KEY_FILE"],
    [{ TLS_CLIENT_CA_FILE: TLS.TLS_CLIENT_CA_FILE }, "TLS_CLIENT_CA_FILE"],
    [{ ...TLS, WECHAT_APPS: APPS }, "TLS_CLIENT_CA_FILE"], // a client CA and no CALLERS to name
    [{ TLS_CERT_FILE: TLS.TLS_CERT_FILE, TLS_KEY_FILE: TLS.TLS_KEY_FILE }, "TLS_CERT_FILE"], // built-in sandbox
  ])("refuses %o naming %s", (raw, variable) => {
    expect(problems(raw as Record<string, string>).some((p) => p.startsWith(`${variable}:`))).toBe(true);
  });

  it("takes one Redis node, a Sentinel set or a Cluster", () => {
    expect(parseConfig({ REDIS_URL: "redis://r:6379" }).redis).toEqual({
      kind: "node",
      url: "redis://r:6379",
    });
    expect(parseConfig({ REDIS_SENTINELS: "s1:26379, s2:26379", REDIS_PASSWORD: "pw" }).redis).toEqual({
      kind: "sentinel",
      sentinels: [
        { host: "s1", port: 26379 },
        { host: "s2", port: 26379 },
      ],
      master: "mymaster",
      password: "pw",
    });
    expect(parseConfig({ REDIS_CLUSTER_NODES: "[::1]:7000,c2:7001" }).redis).toEqual({
      kind: "cluster",
      nodes: [
        { host: "::1", port: 7000 },
        { host: "c2", port: 7001 },
      ],
      password: undefined,
    });
  });

  it("reports every problem at once", () => {
    expect(problems({ GRPC_PORT: "x", HTTP_PORT: "y" })).toHaveLength(2);
  });

  it("takes callers with a key or its SHA-256, and lets production rely on the network only when told", () => {
    const callers = [
      { name: "bff", key: "k".repeat(16), methods: ["*"] },
      { name: "orders", keySha256: "A".repeat(64), methods: ["VerifyToken"] },
    ];
    expect(parseConfig({ CALLERS: JSON.stringify(callers) }).callers).toEqual([
      callers[0],
      { ...callers[1], keySha256: "a".repeat(64) },
    ]);
    const production = {
      NODE_ENV: "production",
      WECHAT_APP_ID: "wx1",
      WECHAT_APP_SECRET: "s",
      KEY_ENCRYPTION_KEY: Buffer.alloc(32).toString("base64"),
    };
    expect(parseConfig({ ...production, CALLER_AUTH_BY_NETWORK: "true" }).callers).toBeNull();
    expect(
      problems({ CALLERS: '[{"name":"x","key":"secret-key-never-echoed","methods":["Nope"]}]' }).join(),
    ).not.toContain("secret-key-never-echoed");
  });

  it("takes TLS files, and callers known by certificate only under a client CA", () => {
    const config = parseConfig({
      ...TLS,
      WECHAT_APPS: APPS,
      CALLERS: JSON.stringify([{ name: "orders", methods: ["VerifyToken"] }]),
    });
    expect(config.tls).toEqual({
      certFile: TLS.TLS_CERT_FILE,
      keyFile: TLS.TLS_KEY_FILE,
      clientCaFile: TLS.TLS_CLIENT_CA_FILE,
    });
    expect(config.callers).toEqual([{ name: "orders", methods: ["VerifyToken"] }]);
    expect(parseConfig({}).tls).toBeNull();
  });

  it("never echoes a URL that may hold a password", () => {
    const text = problems({ DATABASE_URL: "mysql://user:hunter2@db/x" }).join("\n");
    expect(text).not.toContain("hunter2");
  });

  it("never starts the sandbox in production", () => {
    expect(() =>
      parseConfig({ NODE_ENV: "production", KEY_ENCRYPTION_KEY: Buffer.alloc(32).toString("base64") }),
    ).toThrow(ConfigError);
  });

  it("bounds the verified-token cache in bytes, with units", () => {
    expect(parseConfig({}).verifyCacheBytes).toBe(32 * 1024 * 1024);
    expect(parseConfig({ VERIFY_CACHE_BYTES: "64MiB" }).verifyCacheBytes).toBe(64 * 1024 * 1024);
    expect(parseConfig({ VERIFY_CACHE_BYTES: "1gib" }).verifyCacheBytes).toBe(1024 * 1024 * 1024);
    expect(parseConfig({ VERIFY_CACHE_BYTES: "131072" }).verifyCacheBytes).toBe(131072);
    expect(() => parseConfig({ VERIFY_CACHE_BYTES: "32MB" })).toThrow(/VERIFY_CACHE_BYTES: expected a size/);
    expect(() => parseConfig({ VERIFY_CACHE_BYTES: "1KiB" })).toThrow(/VERIFY_CACHE_BYTES/);
  });

  it("keeps ended sessions at least a day, so every revocation outlives its access tokens", () => {
    expect(parseConfig({}).sessionRetentionMs).toBe(7 * 86_400_000);
    expect(parseConfig({ SESSION_RETENTION: "30d" }).sessionRetentionMs).toBe(30 * 86_400_000);
    expect(() => parseConfig({ SESSION_RETENTION: "12h" })).toThrow(/SESSION_RETENTION: .*at least 86400s/);
  });

  it("refuses a retired variable rather than ignore it", () => {
    expect(() => readEnv({ VERIFY_CACHE_SIZE: "100000" })).toThrow(
      /VERIFY_CACHE_SIZE: replaced by VERIFY_CACHE_BYTES/,
    );
  });

  it("reads only its own variables from the environment, treating empty as unset", () => {
    expect(readEnv({ GRPC_PORT: "1", HOME: "/root", HTTP_PORT: "" })).toEqual({ GRPC_PORT: "1" });
  });
});
