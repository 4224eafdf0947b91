import type { Config } from "../config.js";
import type { Logger } from "../observability/logger.js";
import type { WechatSandbox } from "../sandbox/sandbox.js";
import { type AppOverrides, createAppContext, SANDBOX_MOUNT } from "./context.js";
import { startServers } from "./servers.js";

export interface RunningApp {
  grpcPort: number;
  httpPort: number;
  /** METRICS_PORT's, when /metrics has a port of its own; null: /metrics is on the HTTP port. */
  metricsPort: number | null;
  /** Present when the built-in WeChat sandbox serves (no WeChat credentials configured). */
  sandbox: WechatSandbox | undefined;
  log: Logger;
  /** Health turns NOT_SERVING, calls in flight finish, then the ports and pools close. */
  stop(): Promise<void>;
}

/** The running service: the app context, then its servers; stop() drains both in reverse. */
export async function startApp(config: Readonly<Config>, overrides: AppOverrides = {}): Promise<RunningApp> {
  const ctx = await createAppContext(config, overrides);
  let servers: Awaited<ReturnType<typeof startServers>>;
  try {
    servers = await startServers(ctx);
  } catch (err) {
    await ctx.close();
    throw err;
  }
  const { log, sandbox } = ctx;
  log.info("identity service started", {
    grpc: `${config.host}:${servers.grpcPort}`,
    http: `${config.host}:${servers.httpPort}`,
    metrics:
      servers.metricsPort === null
        ? `http://${config.host}:${servers.httpPort}/metrics`
        : `http://${config.host}:${servers.metricsPort}/metrics`,
    database: ctx.database.description,
    store: ctx.storage.kind === "redis" ? "redis" : "in-process (single instance only)",
    revokedSessions: ctx.revocations.size,
    wechat: sandbox
      ? `built-in sandbox at http://127.0.0.1:${servers.httpPort}${SANDBOX_MOUNT} (app ${config.wechat.apps[0]?.appId})`
      : config.wechat.mode === "real"
        ? config.wechat.baseUrl
        : "",
    apps: config.wechat.apps.map((a) => a.appId),
    transport: !config.tls
      ? "cleartext"
      : config.tls.clientCaFile
        ? "TLS, client certificates verified"
        : "TLS",
    callers: config.callers ? config.callers.map((c) => c.name) : "not checked",
  });
  if (sandbox) {
    log.warn(
      "running on the built-in WeChat sandbox: logins are simulated; set WECHAT_APP_ID and WECHAT_APP_SECRET for real ones",
    );
  }
  // Once, however often it is asked (SIGTERM, then an impatient SIGINT).
  let stopped: Promise<void> | undefined;
  return {
    grpcPort: servers.grpcPort,
    httpPort: servers.httpPort,
    metricsPort: servers.metricsPort,
    sandbox,
    log,
    stop() {
      stopped ??= servers.stop().finally(() => ctx.close());
      return stopped;
    },
  };
}
