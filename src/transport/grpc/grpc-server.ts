import { createServer as createNetServer, type Socket } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";
import { Health as HealthService } from "../../gen/grpc/health/v1/health_pb.js";
import type { CallerAuth } from "../caller-auth.js";
import { type ConnectionGuard, type ConnectionLimits, createConnectionGuard } from "../connection-guard.js";
import type { MountedService } from "../mounted-service.js";
import type { TlsMaterial } from "../tls.js";
import { addConnectService } from "./grpc-adapter.js";
import { addHealthService, type HealthStatus } from "./health-service.js";
import { addReflectionService } from "./reflection-service.js";

export interface GrpcServerOptions {
  services: readonly MountedService[];
  maxReceiveBytes: number;
  /** When given, the service's calls must come from allowed callers; health and reflection stay open. */
  callerAuth?: CallerAuth;
  /** TLS (and with a client CA, mTLS) instead of cleartext. */
  tls?: TlsMaterial | null;
  /** When given, connections are capped and silent ones closed (see connection-guard.ts). */
  connections?: ConnectionLimits & {
    /** A connection with no call this long is closed (GOAWAY). */
    idleTimeoutMs: number;
  };
}

/** A connection lives at most this long before GOAWAY, so clients spread over new instances. */
const MAX_CONNECTION_AGE_MS = 30 * 60_000;
/** Streams one connection may run at once. */
const MAX_CONCURRENT_STREAMS = 256;

export interface GrpcServer {
  server: grpc.Server;
  health: HealthStatus;
  listen(host: string, port: number): Promise<number>;
  /** Stops taking calls, lets running ones finish (up to graceMs), then closes. */
  stop(graceMs: number): Promise<void>;
}

export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  const limits = options.connections;
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxReceiveBytes,
    "grpc.max_send_message_length": 4 * 1024 * 1024,
    // channelz bookkeeping runs on every call (docs/benchmarks.md) and nothing here reads it.
    "grpc.enable_channelz": 0,
    "grpc.max_concurrent_streams": MAX_CONCURRENT_STREAMS,
    // Pings find peers that vanished without closing; a ping unanswered in 20 s ends the connection.
    "grpc.keepalive_time_ms": 120_000,
    "grpc.keepalive_timeout_ms": 20_000,
    ...(limits
      ? {
          "grpc.max_connection_idle_ms": limits.idleTimeoutMs,
          "grpc.max_connection_age_ms": MAX_CONNECTION_AGE_MS,
          "grpc.max_connection_age_grace_ms": 60_000,
        }
      : {}),
  });
  const credentials = serverCredentials(options.tls);
  const guard = limits ? createConnectionGuard(limits) : undefined;
  const listener = guard ? createGuardedListener(server, guard, credentials) : undefined;
  for (const { service, impl } of options.services) {
    addConnectService(server, service, impl, {
      callerAuth: options.callerAuth,
      certificates: Boolean(options.tls?.clientCa),
    });
  }
  const services = options.services.map((s) => s.service);
  const health = addHealthService(server, ["", ...services.map((s) => s.typeName)]);
  // grpcurl and `buf curl` discover the API through reflection (v1 and v1alpha).
  addReflectionService(server, [...services, HealthService], [file_google_rpc_error_details]);

  return {
    server,
    health,
    listen: (host, port) =>
      listener
        ? listener.listen(host, port)
        : new Promise((resolve, reject) => {
            server.bindAsync(`${host}:${port}`, credentials, (err, boundPort) =>
              err ? reject(err) : resolve(boundPort),
            );
          }),
    stop: (graceMs) =>
      new Promise((resolve) => {
        listener?.close();
        const force = setTimeout(() => {
          server.forceShutdown();
          listener?.destroyConnections();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          listener?.destroyConnections();
          resolve();
        });
      }),
  };
}

/**
 * TLS credentials for the port. With a client CA, a client certificate is asked for and verified
 * but not required, as on the HTTP port: health and reflection stay open to anyone, and the
 * service's calls need a verified certificate or a caller key (grpc-adapter). createSsl() can only
 * require one, so this goes through grpc-js' certificate-provider credentials, fed the material
 * once.
 */
function serverCredentials(tls: TlsMaterial | null | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const identity = staticProvider({ certificate: Buffer.from(tls.cert), privateKey: Buffer.from(tls.key) });
  const ca = tls.clientCa ? staticProvider({ caCertificate: Buffer.from(tls.clientCa) }) : null;
  return grpc.experimental.createCertificateProviderServerCredentials(identity, ca, false);
}

function staticProvider(
  update: Partial<grpc.experimental.IdentityCertificateUpdate & grpc.experimental.CaCertificateUpdate>,
): grpc.experimental.CertificateProvider {
  // grpc-js starts listening to a provider just before it registers the server that waits for
  // the update: an answer given at once would reach nobody.
  const give = (listener: (u: never) => void) => queueMicrotask(() => listener(update as never));
  return {
    addCaCertificateListener: give,
    addIdentityCertificateListener: give,
    removeCaCertificateListener: () => {},
    removeIdentityCertificateListener: () => {},
  };
}

/**
 * The port as a net server of our own, so that every connection passes the guard before grpc-js
 * gets it (through its connection injector). A connection counts as served once it speaks; one
 * that then runs no call is closed by grpc-js after the idle timeout.
 */
function createGuardedListener(
  server: grpc.Server,
  guard: ConnectionGuard,
  credentials: grpc.ServerCredentials,
) {
  const injector = server.createConnectionInjector(credentials);
  const sockets = new Set<Socket>();
  const net = createNetServer({ noDelay: true }, (socket) => {
    if (!guard.admit(socket)) return;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("error", () => socket.destroy());
    // grpc-js gets the socket with its first bytes (put back for its HTTP/2 session to read first,
    // as the HTTP port does); until then the socket is ours, and the guard closes it if it stays silent.
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      guard.served(socket);
      injector.injectConnection(socket);
    });
  });
  return {
    listen: (host: string, port: number) =>
      new Promise<number>((resolve, reject) => {
        net.once("error", reject);
        net.listen(port, host, () => resolve((net.address() as { port: number }).port));
      }),
    close: () => net.close(),
    destroyConnections() {
      for (const socket of sockets) socket.destroy();
      injector.destroy();
    },
  };
}
