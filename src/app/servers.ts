import { createServer, type Server } from "node:http";
import type { AddressInfo, Server as NetServer } from "node:net";
import { setTimeout } from "node:timers/promises";
import { METRICS_CONTENT_TYPE, registerGauge, scrapeText } from "../observability/metrics.js";
import { callerTable, createCallerAuth } from "../transport/caller-auth.js";
import { createConnectionGuard } from "../transport/connection-guard.js";
import { startGrpcThread } from "../transport/grpc/thread/grpc-thread.js";
import { createDualProtocolServer } from "../transport/http/dual-protocol-server.js";
import { createHttpHandler, type Health, type HttpRoute } from "../transport/http/http-handler.js";
import { readTlsMaterial } from "../transport/tls.js";
import { errorSummary } from "../util/error-summary.js";
import type { AppContext } from "./context.js";

export interface RunningServers {
  grpcPort: number;
  httpPort: number;
  /** METRICS_PORT's, when /metrics has a port of its own. */
  metricsPort: number | null;
  /**
   * Health answers NOT_SERVING at once while calls are still served for SHUTDOWN_DELAY, so
   * balancers stop sending; then both ports stop accepting, calls in flight finish (up to
   * SHUTDOWN_TIMEOUT) and the connections close.
   */
  stop(): Promise<void>;
}

/**
 * Starts both ports on an app context: gRPC on a thread of its own (internal services), HTTP for
 * the BFF (Connect, gRPC-Web, gRPC), health, JWKS and the context's routes. Health turns SERVING
 * once both listen.
 */
export async function startServers(ctx: AppContext): Promise<RunningServers> {
  const { config, log } = ctx;
  const callers = config.callers ? callerTable(config.callers) : null;
  const tls = readTlsMaterial(config.tls);
  let serving = false;
  let grpcFailed = false;
  const grpc = await startGrpcThread({
    host: config.host,
    port: config.grpcPort,
    maxReceiveBytes: config.maxRequestBytes,
    services: ctx.services,
    log,
    clock: ctx.clock,
    tokenSettings: config.tokens,
    cacheBytes: config.verifyCacheBytes,
    watchMaxBehind: config.watchMaxBehind,
    feed: ctx.replicaFeed,
    tracing: config.tracing,
    callers,
    connections: config.connections,
    tls,
    onFailure(err) {
      // /livez turns 503, so the orchestrator replaces this instance.
      grpcFailed = true;
      log.error("the gRPC thread failed; this instance stops reporting live", {
        error: errorSummary(err),
      });
    },
  });

  const { metrics } = ctx;
  registerGauge(
    metrics.registry,
    "identity_grpc_thread_up",
    "1 while the gRPC thread (the gRPC port and its VerifyToken) runs, 0 once it failed.",
    () => (grpcFailed ? 0 : 1),
  );
  const scrape = async () => scrapeText(metrics.registry, grpcFailed ? [] : [await grpc.metrics()]);
  const metricsRoute: HttpRoute = {
    prefix: "/metrics",
    async handle(req, res, rest) {
      if (req.method !== "GET" || rest !== "/") return false;
      res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE });
      res.end(await scrape());
      return true;
    },
  };
  const health: Health = {
    liveness: () => ({ grpcThread: !grpcFailed }),
    readiness: () => ({ serving, grpcThread: !grpcFailed, ...ctx.dependencyChecks() }),
  };

  const http = createDualProtocolServer(
    createHttpHandler({
      services: ctx.services,
      maxRequestBytes: config.maxRequestBytes,
      jwks: () => ctx.keyRing.jwks(),
      health,
      routes: config.metricsPort === null ? [...ctx.routes, metricsRoute] : ctx.routes,
      callerAuth: callers
        ? createCallerAuth(callers, (caller) => metrics.callerAuthFailures.inc({ port: "http", caller }))
        : undefined,
      certificates: Boolean(tls?.clientCa),
      log,
    }),
    {
      guard: createConnectionGuard(config.connections),
      idleTimeoutMs: config.connections.idleTimeoutMs,
      tls,
    },
  );
  try {
    await listen(http.server, config.httpPort, config.host);
  } catch (err) {
    await grpc.stop(0);
    throw err;
  }
  const httpPort = (http.server.address() as AddressInfo).port;
  ctx.listeningAt(`http://127.0.0.1:${httpPort}`);

  // METRICS_PORT: /metrics alone on a port of its own, for a scraper the HTTP port should not see.
  let metricsServer: Server | undefined;
  if (config.metricsPort !== null) {
    const server = createServer((req, res) => {
      void metricsRoute.handle(req, res, req.url === "/metrics" ? "/" : "").then((served) => {
        if (!served) res.writeHead(404).end();
      });
    });
    try {
      await listen(server, config.metricsPort, config.host);
    } catch (err) {
      await Promise.all([grpc.stop(0), http.drain(0)]);
      throw err;
    }
    metricsServer = server;
  }

  serving = true;
  grpc.setServing(true);
  return {
    grpcPort: grpc.port,
    httpPort,
    metricsPort: metricsServer ? (metricsServer.address() as AddressInfo).port : null,
    async stop() {
      serving = false;
      grpc.setServing(false);
      if (config.shutdown.delayMs > 0) await setTimeout(config.shutdown.delayMs);
      // Streams end now (SHUTTING_DOWN: their callers reconnect elsewhere), so the drain waits
      // only for unary calls.
      ctx.revocationStream.close();
      await Promise.all([
        http.drain(config.shutdown.drainTimeoutMs),
        grpc.stop(config.shutdown.drainTimeoutMs),
        new Promise((closed) => (metricsServer ? metricsServer.close(closed) : closed(undefined))),
      ]);
      metricsServer?.closeAllConnections();
    },
  };
}

function listen(server: NetServer, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
}
