import type { AddressInfo } from "node:net";
import { setTimeout } from "node:timers/promises";
import { callerTable, createCallerAuth } from "../transport/caller-auth.js";
import { createConnectionGuard } from "../transport/connection-guard.js";
import { startGrpcThread } from "../transport/grpc/thread/grpc-thread.js";
import { createDualProtocolServer } from "../transport/http/dual-protocol-server.js";
import { createHttpHandler } from "../transport/http/http-handler.js";
import { readTlsMaterial } from "../transport/tls.js";
import { errorSummary } from "../util/logger.js";
import type { AppContext } from "./context.js";

export interface RunningServers {
  grpcPort: number;
  httpPort: number;
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
  const grpc = await startGrpcThread({
    host: config.host,
    port: config.grpcPort,
    maxReceiveBytes: config.maxRequestBytes,
    services: ctx.services,
    log,
    clock: ctx.clock,
    tokenSettings: config.tokens,
    cacheBytes: config.verifyCacheBytes,
    feed: ctx.replicaFeed,
    callers,
    connections: config.connections,
    tls,
    onFailure(err) {
      // /healthz turns 503, so the orchestrator replaces this instance.
      serving = false;
      log.error("the gRPC thread failed; this instance stops reporting healthy", {
        error: errorSummary(err),
      });
    },
  });

  const http = createDualProtocolServer(
    createHttpHandler({
      services: ctx.services,
      maxRequestBytes: config.maxRequestBytes,
      jwks: () => ctx.keyRing.jwks(),
      isServing: () => serving,
      routes: ctx.routes,
      callerAuth: callers ? createCallerAuth(callers) : undefined,
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
    await new Promise<void>((resolve, reject) => {
      http.server.once("error", reject);
      http.server.listen(config.httpPort, config.host, resolve);
    });
  } catch (err) {
    await grpc.stop(0);
    throw err;
  }
  const httpPort = (http.server.address() as AddressInfo).port;
  ctx.listeningAt(`http://127.0.0.1:${httpPort}`);

  serving = true;
  grpc.setServing(true);
  return {
    grpcPort: grpc.port,
    httpPort,
    async stop() {
      serving = false;
      grpc.setServing(false);
      if (config.shutdown.delayMs > 0) await setTimeout(config.shutdown.delayMs);
      await Promise.all([
        http.drain(config.shutdown.drainTimeoutMs),
        grpc.stop(config.shutdown.drainTimeoutMs),
      ]);
    },
  };
}
