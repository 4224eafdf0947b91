import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import type { ServiceImpl } from "@connectrpc/connect";
import { sharedClock } from "../domain/ports.js";
import { IdentityService, type VerifyTokenRequest } from "../gen/identity/v1/identity_pb.js";
import { createKeySchedule } from "../identity/key-ring.js";
import { createRevocationMirror, REVOCATION_RESYNC_INTERVAL_MS } from "../identity/revocations.js";
import { createVerifyToken } from "../identity/verify-token.js";
import type { Logger } from "../util/logger.js";
import { createGrpcServer } from "./grpc.js";
import {
  errorFromData,
  type FromGrpcThread,
  type GrpcThreadData,
  type GrpcThreadUpdate,
  type ToGrpcThread,
} from "./grpc-thread.js";
import { verifyTokenMethod } from "./identity-service.js";

/** The gRPC thread (see grpc-thread.ts): serves VerifyToken here, hands every other call over. */
const data = workerData as GrpcThreadData;
const main = parentPort as MessagePort;
const send = (message: FromGrpcThread) => main.postMessage(message);

const log: Logger = {
  debug: (message, fields) => send({ type: "log", level: "debug", message, fields }),
  info: (message, fields) => send({ type: "log", level: "info", message, fields }),
  warn: (message, fields) => send({ type: "log", level: "warn", message, fields }),
  error: (message, fields) => send({ type: "log", level: "error", message, fields }),
};

const clock = sharedClock(data.clockOffsetMs);
const keys = createKeySchedule(clock);
keys.accept(data.keys);
const revocations = createRevocationMirror(clock);
revocations.add(data.revoked);
setInterval(() => revocations.forgetExpired(), REVOCATION_RESYNC_INTERVAL_MS).unref();

let updatesApplied = 0;
/** Takes, synchronously, the updates the main thread has posted and this thread has not applied yet. */
function applyUpdates(): void {
  if (Atomics.load(data.updatesPosted, 0) === updatesApplied) return;
  for (let next = receiveMessageOnPort(data.updates); next; next = receiveMessageOnPort(data.updates)) {
    updatesApplied++;
    const update = next.message as GrpcThreadUpdate;
    if ("keys" in update) keys.accept(update.keys);
    else revocations.add(update.revoked);
  }
}
// A thread without calls takes them every second, so they do not pile up.
setInterval(applyUpdates, 1000).unref();

const verifyToken = verifyTokenMethod(
  createVerifyToken({
    keyRing: keys,
    revocations,
    settings: data.tokenSettings,
    clock,
    cacheSize: data.cacheSize,
  }),
  log,
);

const calls = new Map<number, { resolve(response: unknown): void; reject(err: unknown): void }>();
let lastCallId = 0;
const handOver = (method: string) => (request: unknown) =>
  new Promise((resolve, reject) => {
    const id = ++lastCallId;
    calls.set(id, { resolve, reject });
    send({ type: "call", id, method, request });
  });

const impl: Record<string, (request: unknown) => unknown> = Object.fromEntries(
  IdentityService.methods.map((m) => [m.localName, handOver(m.localName)]),
);
impl.verifyToken = (request: unknown) => {
  applyUpdates();
  return verifyToken(request as VerifyTokenRequest);
};

const grpc = createGrpcServer({
  service: IdentityService,
  impl: impl as Partial<ServiceImpl<typeof IdentityService>>,
  maxReceiveBytes: data.maxReceiveBytes,
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
      grpc.health.setStatus(IdentityService.typeName, status);
      break;
    }
    case "stop":
      void grpc.stop(message.graceMs).then(() => send({ type: "stopped" }));
      break;
  }
});

send({ type: "listening", port: await grpc.listen(data.host, data.port) });
