import { extname } from "node:path";
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import {
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  createServiceImplSpec,
} from "@connectrpc/connect";
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { SharedClock } from "../../../domain/ports.js";
import type { TokenSettings } from "../../../domain/tokens.js";
import type { ReplicaFeed, ReplicaUpdate } from "../../../identity/verify-token-replica.js";
import type { Logger } from "../../../observability/logger.js";
import type { TracingSettings } from "../../../observability/tracing.js";
import { type ErrorData, errorData } from "../../../wire/errors.js";
import { callerAddressKey } from "../../caller-address.js";
import { type CallerTable, callerNameKey } from "../../caller-auth.js";
import type { MountedService } from "../../mounted-service.js";
import type { TlsMaterial } from "../../tls.js";
import type { GrpcServerOptions } from "../grpc-server.js";

/**
 * The gRPC server runs on a thread of its own, a V8 isolate that sees nothing but grpc-js and
 * VerifyToken: Connect traffic in the same isolate made grpc-js's VerifyToken about a third slower
 * (docs/architecture.md). The thread answers VerifyToken from a replica of what that reads (the
 * public signing keys and the ended sessions), fed by this thread through one ReplicaFeed; every
 * other method it hands to this thread's ServiceImpl, with its deadline and its cancellation, so
 * there is still one implementation of each.
 */

/** What the gRPC thread starts with (structured-cloned to it). */
export interface GrpcThreadData {
  host: string;
  port: number;
  maxReceiveBytes: number;
  tokenSettings: TokenSettings;
  cacheBytes: number;
  /** WATCH_REVOCATIONS_MAX_BEHIND; undefined: the stream's default. */
  watchMaxBehind: number | undefined;
  clockOffsetMs: Float64Array;
  /** The replica's starting state. */
  snapshot: ReplicaUpdate[];
  /** The services the port serves (their type names: the thread has the descriptors). */
  serviceNames: string[];
  /** Who may call what (CALLERS); null: callers are not checked. */
  callers: CallerTable | null;
  connections: GrpcServerOptions["connections"];
  tls: TlsMaterial | null;
  /** Whether the main thread writes debug lines (the thread's lines are written there). */
  debugLog: boolean;
  /** Traces: the thread exports its VerifyToken spans itself (OTLP), or makes none. */
  tracing: TracingSettings;
  /** The replica's updates, in order. */
  updates: MessagePort;
  /**
   * How many updates were posted. Before each VerifyToken the thread compares it with how many
   * it has applied and takes the missing ones synchronously, so a logout answered here is seen
   * by the next VerifyToken there, whatever order the two threads' events run in.
   */
  updatesPosted: Int32Array;
}

export type ToGrpcThread =
  | { type: "reply"; id: number; response: unknown }
  | { type: "reply"; id: number; error: ErrorData }
  | { type: "serving"; serving: boolean }
  /** A scrape: the thread answers with its registry's metrics. */
  | { type: "metrics"; id: number }
  | { type: "stop"; graceMs: number };

export type FromGrpcThread =
  | { type: "listening"; port: number }
  /** A call handed over; `timeoutMs` is what was left of its deadline when it was sent. */
  | {
      type: "call";
      id: number;
      /** The service's type name and the method's local name. */
      service: string;
      method: string;
      request: unknown;
      timeoutMs: number | undefined;
      callerAddress: string;
      /** The caller the thread authenticated ("" when callers are not checked). */
      caller: string;
      /**
       * The call's x-request-id (the one made for it when it came without) and its trace
       * context, for the log lines and the span of it here.
       */
      headers: Record<string, string>;
    }
  | { type: "metrics"; id: number; metrics: ThreadMetrics }
  /** The caller cancelled a call handed over (or its deadline passed there). */
  | { type: "cancel"; id: number }
  | {
      type: "log";
      level: "debug" | "info" | "warn" | "error";
      message: string;
      fields?: Record<string, unknown>;
    }
  | { type: "stopped" };

/** The thread's module, next to this one and in its language (.js built, .ts under the tests' loader). */
const THREAD_ENTRY = new URL(
  `./grpc-thread-worker${extname(new URL(import.meta.url).pathname)}`,
  import.meta.url,
);

export interface GrpcThreadOptions {
  host: string;
  port: number;
  maxReceiveBytes: number;
  /** IdentityService (whose VerifyToken the thread answers itself) and the other services. */
  services: readonly MountedService[];
  log: Logger;
  clock: SharedClock;
  tokenSettings: TokenSettings;
  cacheBytes: number;
  /** Messages a WatchRevocations subscriber on this port may fall behind (WATCH_REVOCATIONS_MAX_BEHIND). */
  watchMaxBehind?: number;
  /** Where the thread's VerifyToken replica gets its state from. */
  feed: ReplicaFeed;
  /** OTEL_TRACES_EXPORTER and where to: the thread traces its own calls; none: off. */
  tracing?: TracingSettings;
  callers?: CallerTable | null;
  /** Caps and timeouts of the port's connections; none: unguarded. */
  connections?: GrpcServerOptions["connections"];
  /** TLS (mTLS with a client CA); none: cleartext. */
  tls?: TlsMaterial | null;
  /** The thread ended on its own after it started: this instance no longer serves gRPC. */
  onFailure(err: Error): void;
}

/** The thread's metrics, as prom-client's getMetricsAsJSON gives them. */
export type ThreadMetrics = MetricObjectWithValues<MetricValue<string>>[];

export interface GrpcThread {
  port: number;
  /** The thread's metrics (what it served, its VerifyToken cache), for a scrape; [] once it ended. */
  metrics(): Promise<ThreadMetrics>;
  setServing(serving: boolean): void;
  /** Stops taking calls, lets running ones finish (up to graceMs), then ends the thread. */
  stop(graceMs: number): Promise<void>;
}

export function startGrpcThread(options: GrpcThreadOptions): Promise<GrpcThread> {
  const updates = new MessageChannel();
  const updatesPosted = new Int32Array(new SharedArrayBuffer(4));
  const data: GrpcThreadData = {
    host: options.host,
    port: options.port,
    maxReceiveBytes: options.maxReceiveBytes,
    tokenSettings: options.tokenSettings,
    cacheBytes: options.cacheBytes,
    watchMaxBehind: options.watchMaxBehind,
    clockOffsetMs: options.clock.offsetMs,
    snapshot: options.feed.snapshot(),
    serviceNames: options.services.map((s) => s.service.typeName),
    callers: options.callers ?? null,
    connections: options.connections,
    tls: options.tls ?? null,
    debugLog: options.log.debugEnabled,
    tracing: options.tracing ?? { exporter: "none", endpoint: "", serviceName: "" },
    updates: updates.port2,
    updatesPosted,
  };
  const worker = new Worker(THREAD_ENTRY, { workerData: data, transferList: [updates.port2] });
  const unwatch = options.feed.watch((update) => {
    updates.port1.postMessage(update);
    Atomics.add(updatesPosted, 0, 1);
  });

  const specs = new Map(
    options.services.map(({ service, impl }) => [
      service.typeName,
      { service, spec: createServiceImplSpec(service, impl) },
    ]),
  );
  const send = (message: ToGrpcThread) => worker.postMessage(message);
  /** The calls handed over and not answered yet, to cancel. */
  const running = new Map<number, ReturnType<typeof createHandlerContext>>();

  /** A call the thread hands over: run by the ServiceImpl here, the answer or error sent back. */
  async function answer(call: Extract<FromGrpcThread, { type: "call" }>) {
    const { id, method: name, request, timeoutMs } = call;
    try {
      const served = specs.get(call.service);
      const methodSpec = served?.spec.methods[name];
      if (!served || methodSpec?.kind !== "unary")
        throw new ConnectError(`${call.service}/${name} is not served`, Code.Unimplemented);
      const { method } = methodSpec;
      const context = createHandlerContext({
        service: served.service,
        method,
        protocolName: "grpc",
        requestMethod: "POST",
        url: `/${served.service.typeName}/${method.name}`,
        timeoutMs,
        requestHeader: call.headers,
        contextValues: createContextValues()
          .set(callerAddressKey, call.callerAddress)
          .set(callerNameKey, call.caller),
      });
      running.set(id, context);
      send({ type: "reply", id, response: await methodSpec.impl(request as never, context) });
    } catch (err) {
      send({ type: "reply", id, error: errorData(err) });
    } finally {
      running.delete(id);
    }
  }

  /** Scrapes waiting for the thread's metrics. */
  const scrapes = new Map<number, (metrics: ThreadMetrics) => void>();
  let lastScrape = 0;
  let stopping = false;
  let exited = false;
  return new Promise((resolve, reject) => {
    let started = false;
    const ended = (err: Error) => {
      if (exited) return;
      exited = true;
      unwatch();
      updates.port1.close();
      for (const context of running.values()) context.abort(err);
      for (const answer of scrapes.values()) answer([]);
      scrapes.clear();
      if (!started) reject(err);
      else if (!stopping) options.onFailure(err);
    };
    // An uncaught error ends the thread ("error", then "exit"); report the error, once.
    worker.on("error", ended);
    worker.on("exit", (code) => ended(new Error(`the gRPC thread exited with code ${code}`)));
    worker.on("message", (message: FromGrpcThread) => {
      switch (message.type) {
        case "listening":
          started = true;
          resolve({
            port: message.port,
            setServing: (serving) => send({ type: "serving", serving }),
            metrics: () =>
              new Promise((answer) => {
                if (exited) return answer([]);
                const id = ++lastScrape;
                scrapes.set(id, answer);
                send({ type: "metrics", id });
              }),
            stop: (graceMs) =>
              new Promise<void>((done) => {
                stopping = true;
                if (exited) return done();
                worker.once("exit", () => done());
                send({ type: "stop", graceMs });
              }),
          });
          break;
        case "call":
          void answer(message);
          break;
        case "cancel":
          running.get(message.id)?.abort(new ConnectError("the caller cancelled the call", Code.Canceled));
          break;
        case "metrics":
          scrapes.get(message.id)?.(message.metrics);
          scrapes.delete(message.id);
          break;
        case "log":
          options.log[message.level](message.message, message.fields);
          break;
        case "stopped":
          void worker.terminate();
          break;
      }
    });
  });
}
