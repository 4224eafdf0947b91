import { monitorEventLoopDelay } from "node:perf_hooks";
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import type { DescService } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { sharedClock } from "../../../domain/ports.js";
import { AdminService } from "../../../gen/identity/v1/admin_pb.js";
import { IdentityService, type VerifyTokenRequest } from "../../../gen/identity/v1/identity_pb.js";
import { createVerifyTokenReplica, type ReplicaUpdate } from "../../../identity/verify-token-replica.js";
import type { Logger } from "../../../observability/logger.js";
import {
  createCallMetrics,
  registerGauge,
  registerRevocationSubscribers,
  registerVerifyCache,
} from "../../../observability/metrics.js";
import { REQUEST_ID_HEADER, requestIdOf } from "../../../observability/rpc-calls.js";
import { createTracing, TRACE_HEADERS } from "../../../observability/tracing.js";
import { createRevocationStream } from "../../../revocation/revocation-stream.js";
import { errorFromData } from "../../../wire/errors.js";
import { callerAddressKey } from "../../caller-address.js";
import { callerNameKey, createCallerAuth } from "../../caller-auth.js";
import { guarded, guardedStream } from "../../identity-service/guard.js";
import { verifyTokenRpc } from "../../identity-service/verify-token.js";
import { watchRevocationsRpc } from "../../identity-service/watch-revocations.js";
import type { MountedService } from "../../mounted-service.js";
import { createGrpcServer } from "../grpc-server.js";
import type { FromGrpcThread, GrpcThreadData, ToGrpcThread } from "./grpc-thread.js";

/** The gRPC thread (see grpc-thread.ts): serves VerifyToken here, hands every other call over. */
const data = workerData as GrpcThreadData;
const main = parentPort as MessagePort;
const send = (message: FromGrpcThread) => main.postMessage(message);

const log: Logger = {
  debug: (message, fields) => send({ type: "log", level: "debug", message, fields }),
  info: (message, fields) => send({ type: "log", level: "info", message, fields }),
  warn: (message, fields) => send({ type: "log", level: "warn", message, fields }),
  error: (message, fields) => send({ type: "log", level: "error", message, fields }),
  debugEnabled: data.debugLog,
};

const replica = createVerifyTokenReplica({
  clock: sharedClock(data.clockOffsetMs),
  settings: data.tokenSettings,
  cacheBytes: data.cacheBytes,
});
for (const update of data.snapshot) replica.apply(update);

let updatesApplied = 0;
/** Takes, synchronously, the updates the main thread has posted and this thread has not applied yet. */
function applyUpdates(): void {
  if (Atomics.load(data.updatesPosted, 0) === updatesApplied) return;
  for (let next = receiveMessageOnPort(data.updates); next; next = receiveMessageOnPort(data.updates)) {
    updatesApplied++;
    replica.apply(next.message as ReplicaUpdate);
  }
}
// Between calls, updates are applied as they arrive (WatchRevocations subscribers hear of them at
// once); a VerifyToken takes any still queued synchronously first (applyUpdates).
data.updates.on("message", (update: ReplicaUpdate) => {
  updatesApplied++;
  replica.apply(update);
});

const calls = new Map<number, { resolve(response: unknown): void; reject(err: unknown): void }>();
let lastCallId = 0;
/** Hands a call to the main thread with what is left of its deadline; a cancellation follows it. */
const handOver = (service: string, method: string) => (request: unknown, context: HandlerContext) =>
  new Promise((resolve, reject) => {
    const id = ++lastCallId;
    const { signal } = context;
    const cancel = () => send({ type: "cancel", id });
    signal.addEventListener("abort", cancel, { once: true });
    calls.set(id, {
      resolve(response) {
        signal.removeEventListener("abort", cancel);
        resolve(response);
      },
      reject(err) {
        signal.removeEventListener("abort", cancel);
        reject(err);
      },
    });
    const callerAddress = context.values.get(callerAddressKey);
    const caller = context.values.get(callerNameKey);
    // The request id (made here when the call came without) and the trace context travel along.
    const headers: Record<string, string> = { [REQUEST_ID_HEADER]: requestIdOf(context) };
    for (const name of TRACE_HEADERS) {
      const value = context.requestHeader.get(name);
      if (value) headers[name] = value;
    }
    send({
      type: "call",
      id,
      service,
      method,
      request,
      timeoutMs: context.timeoutMs(),
      callerAddress,
      caller,
      headers,
    });
  });

/** Every method of every service is handed over, but VerifyToken (below). */
const handingOver = (service: DescService): Record<string, unknown> =>
  Object.fromEntries(service.methods.map((m) => [m.localName, handOver(service.typeName, m.localName)]));
const services = [IdentityService, AdminService].filter((s) => data.serviceNames.includes(s.typeName));
const impls = new Map(services.map((s) => [s, handingOver(s)]));
const impl = impls.get(IdentityService) as Record<string, unknown>;
// What this thread serves is counted here; the main thread adds it to its own at each scrape.
const registry = new Registry();
const metrics = createCallMetrics(registry);
registerVerifyCache(registry, "grpc", replica.verifyToken.cacheStats);
// This thread's own event loop: a VerifyToken waits on it, and the process's figures miss it.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
registerGauge(
  registry,
  "identity_grpc_thread_event_loop_delay_p99_seconds",
  "The gRPC thread's event-loop delay, 99th percentile since the previous scrape.",
  () => {
    const p99 = loopDelay.percentile(99) / 1e9;
    loopDelay.reset();
    return p99;
  },
);
const tracing = createTracing(data.tracing);
const verifyToken = guarded(
  log,
  IdentityService.method.verifyToken,
  verifyTokenRpc(replica.verifyToken, data.cacheBytes),
  { metrics, tracer: tracing.tracer },
);
impl.verifyToken = (request: VerifyTokenRequest, context: HandlerContext) => {
  applyUpdates();
  return verifyToken(request, context);
};
// WatchRevocations on this port streams from this thread's replica: the same updates, in order.
const revocationStream = createRevocationStream(replica.feed, { maxQueued: data.watchMaxBehind });
registerRevocationSubscribers(registry, () => revocationStream.subscribers);
impl.watchRevocations = guardedStream(
  log,
  IdentityService.method.watchRevocations,
  watchRevocationsRpc(revocationStream),
  { metrics },
);

const grpc = createGrpcServer({
  services: services.map((service) => ({ service, impl: impls.get(service) as MountedService["impl"] })),
  maxReceiveBytes: data.maxReceiveBytes,
  callerAuth: data.callers
    ? createCallerAuth(data.callers, (caller) => metrics.callerAuthFailures.inc({ port: "grpc", caller }))
    : undefined,
  tls: data.tls,
  connections: data.connections,
});

main.on("message", (message: ToGrpcThread) => {
  switch (message.type) {
    case "reply": {
      const call = calls.get(message.id);
      calls.delete(message.id);
      if ("error" in message) call?.reject(errorFromData(message.error));
      else call?.resolve(message.response);
      break;
    }
    case "serving": {
      const status = message.serving ? "SERVING" : "NOT_SERVING";
      grpc.health.setStatus("", status);
      for (const service of services) grpc.health.setStatus(service.typeName, status);
      break;
    }
    case "metrics":
      void registry
        .getMetricsAsJSON()
        .then((json) => send({ type: "metrics", id: message.id, metrics: json }));
      break;
    case "stop":
      // Streams end now (SHUTTING_DOWN), so the drain waits only for unary calls.
      revocationStream.close();
      void grpc
        .stop(message.graceMs)
        .then(() => tracing.shutdown().catch(() => {}))
        .then(() => send({ type: "stopped" }));
      break;
  }
});

send({ type: "listening", port: await grpc.listen(data.host, data.port) });
