import { MessageChannel, type MessagePort, Worker, type WorkerOptions } from "node:worker_threads";
import {
  Code,
  ConnectError,
  createHandlerContext,
  createServiceImplSpec,
  type ServiceImpl,
} from "@connectrpc/connect";
import type { SharedClock } from "../domain/ports.js";
import type { TokenSettings } from "../domain/tokens.js";
import { IdentityService } from "../gen/identity/v1/identity_pb.js";
import type { KeyRing, PublishedKey } from "../identity/key-ring.js";
import type { RevocationEntry, Revocations } from "../identity/revocations.js";
import type { Logger } from "../util/logger.js";
import { encodedDetails } from "./grpc.js";

/**
 * The gRPC server runs on a thread of its own, a V8 isolate that sees nothing but grpc-js and
 * VerifyToken. Why: Connect traffic in the same isolate made grpc-js's VerifyToken about a third
 * slower (bench/verify-token.ts: 200 Connect calls before the load gave 0.75 of a bare grpc-js
 * server, 200 Logins over gRPC gave 1.07), because the Node internals both stacks run through
 * get compiled for both. The thread answers VerifyToken itself from its own key schedule,
 * revocation mirror and token cache, which this thread keeps current; every other method it hands
 * to this thread's ServiceImpl, so there is still one implementation of each.
 */

/** What the gRPC thread starts with (structured-cloned to it). */
export interface GrpcThreadData {
  host: string;
  port: number;
  maxReceiveBytes: number;
  tokenSettings: TokenSettings;
  cacheSize: number;
  clockOffsetMs: Float64Array;
  keys: readonly PublishedKey[];
  revoked: readonly RevocationEntry[];
  /** Key and revocation updates, in order. */
  updates: MessagePort;
  /**
   * How many updates were posted. Before each VerifyToken the thread compares it with how many
   * it has applied and takes the missing ones synchronously, so a logout answered here is seen
   * by the next VerifyToken there, whatever order the two threads' events run in.
   */
  updatesPosted: Int32Array;
}

export type GrpcThreadUpdate = { keys: readonly PublishedKey[] } | { revoked: readonly RevocationEntry[] };

/** A ConnectError as it crosses between the threads. */
export interface ErrorData {
  code: Code;
  message: string;
  details: Array<{ type: string; value: Uint8Array }>;
}

export type ToGrpcThread =
  | { type: "reply"; id: number; response: unknown }
  | { type: "reply"; id: number; error: ErrorData }
  | { type: "serving"; serving: boolean }
  | { type: "stop"; graceMs: number };

export type FromGrpcThread =
  | { type: "listening"; port: number }
  | { type: "call"; id: number; method: string; request: unknown }
  | { type: "log"; level: keyof Logger; message: string; fields?: Record<string, unknown> }
  | { type: "stopped" };

export function errorData(err: unknown): ErrorData {
  const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal);
  return { code: error.code, message: error.rawMessage, details: encodedDetails(error) };
}

export function errorFromData(data: ErrorData): ConnectError {
  const error = new ConnectError(data.message, data.code);
  error.details = data.details;
  return error;
}

/**
 * The thread's entry: the built .js; under a TypeScript loader (the tests run the sources) the .ts
 * through tsx, resolved from the working directory (the repository root).
 */
function threadEntry(): { entry: string | URL; options: WorkerOptions } {
  const self = import.meta.url;
  if (!self.endsWith(".ts")) return { entry: new URL("./grpc-thread-worker.js", self), options: {} };
  const source = JSON.stringify(new URL("./grpc-thread-worker.ts", self).href);
  return {
    entry: `import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${source}); });`,
    options: { eval: true },
  };
}

export interface GrpcThreadOptions {
  host: string;
  port: number;
  maxReceiveBytes: number;
  impl: ServiceImpl<typeof IdentityService>;
  log: Logger;
  clock: SharedClock;
  tokenSettings: TokenSettings;
  cacheSize: number;
  keyRing: Pick<KeyRing, "publishedKeys" | "watch">;
  revocations: Pick<Revocations, "entries" | "watch">;
  /** The thread ended on its own after it started: this instance no longer serves gRPC. */
  onFailure(err: Error): void;
}

export interface GrpcThread {
  port: number;
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
    cacheSize: options.cacheSize,
    clockOffsetMs: options.clock.offsetMs,
    keys: options.keyRing.publishedKeys(),
    revoked: options.revocations.entries(),
    updates: updates.port2,
    updatesPosted,
  };
  const { entry, options: entryOptions } = threadEntry();
  const worker = new Worker(entry, { ...entryOptions, workerData: data, transferList: [updates.port2] });

  const post = (update: GrpcThreadUpdate) => {
    updates.port1.postMessage(update);
    Atomics.add(updatesPosted, 0, 1);
  };
  const unwatch = [
    options.keyRing.watch((keys) => post({ keys })),
    options.revocations.watch((revoked) => post({ revoked })),
  ];

  const spec = createServiceImplSpec<typeof IdentityService>(IdentityService, options.impl);
  const send = (message: ToGrpcThread) => worker.postMessage(message);

  /** A call the thread hands over: run by the ServiceImpl here, the answer or error sent back. */
  async function answer(id: number, name: string, request: unknown) {
    try {
      const methodSpec = spec.methods[name];
      if (methodSpec?.kind !== "unary") throw new ConnectError(`${name} is not served`, Code.Unimplemented);
      const { method } = methodSpec;
      // No use case reads the context's deadline or signal, so neither crosses the threads.
      const context = createHandlerContext({
        service: IdentityService,
        method,
        protocolName: "grpc",
        requestMethod: "POST",
        url: `/${IdentityService.typeName}/${method.name}`,
      });
      send({ type: "reply", id, response: await methodSpec.impl(request as never, context) });
    } catch (err) {
      send({ type: "reply", id, error: errorData(err) });
    }
  }

  let stopping = false;
  let exited = false;
  return new Promise((resolve, reject) => {
    let started = false;
    const ended = (err: Error) => {
      if (exited) return;
      exited = true;
      for (const stop of unwatch) stop();
      updates.port1.close();
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
          void answer(message.id, message.method, message.request);
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
