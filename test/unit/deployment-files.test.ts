import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CONFIG_VARIABLES, parseConfig } from "../../src/config.js";

/** No Docker engine runs here, so the deployment files are checked by reading them. */
const compose = parse(readFileSync("docker-compose.yml", "utf8")) as {
  services: Record<
    string,
    {
      environment?: Record<string, string>;
      ports?: string[];
      healthcheck?: unknown;
      depends_on?: Record<string, { condition: string }>;
      stop_grace_period?: string;
      profiles?: string[];
      volumes?: string[];
    }
  >;
};
const dockerfile = readFileSync("Dockerfile", "utf8");

describe("docker-compose.yml", () => {
  const identity = compose.services.identity;
  const env = identity?.environment ?? {};

  const byDefault = Object.entries(compose.services).filter(([, s]) => !s.profiles);

  it("brings up Postgres, Redis and the service, each with a health check", () => {
    expect(byDefault.map(([name]) => name).sort()).toEqual(["identity", "postgres", "redis"]);
    for (const [, service] of byDefault) expect(service.healthcheck).toBeDefined();
    expect(identity?.depends_on).toEqual({
      postgres: { condition: "service_healthy" },
      redis: { condition: "service_healthy" },
    });
  });

  it("checks the service's readiness (/readyz), which its dependants wait for", () => {
    expect(JSON.stringify(identity?.healthcheck)).toContain("/readyz");
  });

  it("adds Prometheus and Grafana with the observability profile, wired to files that exist", () => {
    const observability = Object.entries(compose.services).filter(([, s]) =>
      s.profiles?.includes("observability"),
    );
    expect(observability.map(([name]) => name).sort()).toEqual(["grafana", "prometheus"]);
    for (const [, service] of observability) {
      for (const volume of service.volumes ?? [])
        expect(existsSync(volume.split(":")[0] as string)).toBe(true);
    }
    const prometheus = parse(readFileSync("deploy/prometheus/prometheus.yml", "utf8")) as {
      rule_files: string[];
      scrape_configs: Array<{ metrics_path: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const scrape = prometheus.scrape_configs[0];
    expect(scrape?.metrics_path).toBe("/metrics");
    expect(scrape?.static_configs[0]?.targets).toEqual([`identity:${parseConfig({}).httpPort}`]);
    expect(prometheus.rule_files).toEqual(["/etc/prometheus/alerts.yml"]);
  });

  it("sets only variables the service reads", () => {
    for (const name of Object.keys(env)) expect(CONFIG_VARIABLES as readonly string[]).toContain(name);
  });

  it("points the service at the compose Postgres and Redis", () => {
    const pg = compose.services.postgres?.environment ?? {};
    expect(new URL(env.DATABASE_URL ?? "").hostname).toBe("postgres");
    expect(env.DATABASE_URL).toBe(
      `postgres://${pg.POSTGRES_USER}:${pg.POSTGRES_PASSWORD}@postgres:5432/${pg.POSTGRES_DB}`,
    );
    expect(new URL(env.REDIS_URL ?? "").hostname).toBe("redis");
  });

  it("publishes the ports the configuration listens on", () => {
    // What compose makes of ${NAME:-default} when NAME is unset; the required ${NAME:?} ones are given.
    const withDefaults = Object.fromEntries(
      Object.entries(env).map(([name, value]) => [name, value.replace(/^\$\{[A-Z_]+:-(.*)\}$/, "$1")]),
    );
    const config = parseConfig({
      ...withDefaults,
      WECHAT_APP_ID: "wxcompose",
      WECHAT_APP_SECRET: "s",
      KEY_ENCRYPTION_KEY: Buffer.alloc(32).toString("base64"),
      CALLERS: JSON.stringify([{ name: "bff", key: "k".repeat(16), methods: ["*"] }]),
    });
    expect(config.signingKeys.rotationIntervalMs).toBe(30 * 86400 * 1000);
    expect(identity?.ports).toEqual([
      `${config.grpcPort}:${config.grpcPort}`,
      `${config.httpPort}:${config.httpPort}`,
    ]);
  });

  it("gives a stopping service longer than its shutdown delay and drain take", () => {
    const { shutdown } = parseConfig({});
    const grace = Number(/^(\d+)s$/.exec(identity?.stop_grace_period ?? "")?.[1]) * 1000;
    expect(grace).toBeGreaterThan(shutdown.delayMs + shutdown.drainTimeoutMs);
  });

  it("runs in production mode, which requires real WeChat credentials, a key-encryption key and its callers", () => {
    expect(env.NODE_ENV).toBe("production");
    for (const name of ["WECHAT_APP_ID", "WECHAT_APP_SECRET", "KEY_ENCRYPTION_KEY", "CALLERS"])
      expect(env[name]).toMatch(/\$\{.+:\?/);
  });
});

describe("Dockerfile", () => {
  it("builds in stages and runs as a non-root user with a liveness check on /livez", () => {
    expect(dockerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*\/livez/);
    expect(dockerfile).toMatch(/COPY drizzle/); // migrations run at start
    expect(dockerfile).toMatch(/EXPOSE 50051 8080/);
  });
});

describe("package-lock.json", () => {
  const lock = JSON.parse(readFileSync("package-lock.json", "utf8")) as {
    packages: Record<string, { optionalDependencies?: Record<string, string> }>;
  };

  it("holds every platform's optional binaries, so `npm ci` installs from it on any machine", () => {
    const missing: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const name of Object.keys(entry.optionalDependencies ?? {})) {
        // npm resolves a dependency next to its dependant first, then at the top.
        const nested = `${path ? `${path}/` : ""}node_modules/${name}`;
        if (!lock.packages[nested] && !lock.packages[`node_modules/${name}`]) missing.push(name);
      }
    }
    expect(missing).toEqual([]);
  });

  it("is what the Dockerfile installs from, with no fallback to `npm install`", () => {
    expect(dockerfile).toMatch(/npm ci/);
    expect(dockerfile).not.toMatch(/npm install/);
  });
});
