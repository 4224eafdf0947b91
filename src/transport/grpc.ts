import { isUtf8 } from "node:buffer";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  ScalarType,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  createServiceImplSpec,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { file_google_rpc_error_details } from "../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../gen/google/rpc/status_pb.js";
import { Health as HealthService } from "../gen/grpc/health/v1/health_pb.js";
import { addHealthService, type HealthStatus } from "./grpc-health.js";
import { addReflectionService } from "./grpc-reflection.js";

/**
 * The gRPC transport on @grpc/grpc-js (measured several times faster than connect-node's gRPC for
 * a small unary call: ARCHITECTURE.md). The service is the same Connect ServiceImpl the Connect
 * server mounts; a generic adapter walks the generated descriptor and builds grpc-js handlers.
 */

/** What requestDeserialize returns for bytes that are not a valid message (answered, not thrown). */
const UNDECODABLE = Symbol("undecodable");

/** A ConnectError's details as type names and encoded messages, whether made here or received. */
export function encodedDetails(err: ConnectError): Array<{ type: string; value: Uint8Array }> {
  return err.details.map((d) =>
    "desc" in d
      ? { type: d.desc.typeName, value: toBinary(d.desc, create(d.desc, d.value as never)) }
      : { type: d.type, value: d.value },
  );
}

/** Encodes a ConnectError as grpc-js status, with google.rpc.Status in grpc-status-details-bin. */
export function toGrpcStatus(err: ConnectError): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  if (err.details.length > 0) {
    const details = encodedDetails(err).map((d) => ({
      typeUrl: `type.googleapis.com/${d.type}`,
      value: d.value,
    }));
    const status = create(StatusSchema, { code: err.code, message: err.rawMessage, details });
    metadata.set("grpc-status-details-bin", Buffer.from(toBinary(StatusSchema, status)));
  }
  return { code: err.code as number as grpc.status, details: err.rawMessage, metadata };
}

/**
 * The HandlerContext a gRPC call hands to the ServiceImpl, built lazily: creating a full Connect
 * context (abort signal, three Headers) costs ~15 µs, a sixth of a warm VerifyToken, and
 * handlers that never look at it should not pay for it.
 */
class LazyGrpcContext {
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  #full: HandlerContext | undefined;

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    readonly url: string,
    private readonly serverCall: grpc.ServerUnaryCall<unknown, unknown>,
  ) {}

  get #context(): HandlerContext {
    if (!this.#full) {
      const deadline = this.serverCall.getDeadline();
      const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number(deadline);
      const controller = createHandlerContext({
        service: this.service,
        method: this.method,
        protocolName: this.protocolName,
        requestMethod: this.requestMethod,
        url: this.url,
        timeoutMs: Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : undefined,
      });
      this.serverCall.once("cancelled", () => controller.abort());
      this.#full = controller;
    }
    return this.#full;
  }
  get signal() {
    return this.#context.signal;
  }
  get timeoutMs() {
    return this.#context.timeoutMs;
  }
  get requestHeader() {
    return this.#context.requestHeader;
  }
  get responseHeader() {
    return this.#context.responseHeader;
  }
  get responseTrailer() {
    return this.#context.responseTrailer;
  }
  get values() {
    return this.#context.values;
  }
}

/** Answers a failed call: ConnectErrors as they are, anything else as INTERNAL (never its text). */
function fail(callback: grpc.sendUnaryData<unknown>, err: unknown): void {
  const connectError = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal);
  callback(toGrpcStatus(connectError));
}

function unaryHandler(
  service: DescService,
  method: DescMethod,
  call: (req: unknown, ctx: HandlerContext) => Promise<unknown> | unknown,
) {
  const url = `/${service.typeName}/${method.name}`;
  return (serverCall: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    if (serverCall.request === UNDECODABLE) {
      fail(callback, new ConnectError("request is not a valid protobuf message", Code.InvalidArgument));
      return;
    }
    let result: unknown;
    try {
      result = call(
        serverCall.request,
        new LazyGrpcContext(service, method, url, serverCall) as HandlerContext,
      );
    } catch (err) {
      return fail(callback, err);
    }
    // Synchronous answers (VerifyToken from the cache) go out without a promise round trip.
    if (result instanceof Promise) {
      result.then(
        (response) => callback(null, response),
        (err: unknown) => fail(callback, err),
      );
    } else callback(null, result);
  };
}

/**
 * A decoder for messages whose fields are all plain strings (VerifyTokenRequest, RefreshRequest),
 * or undefined for other messages. It reads the wire format directly into a message object and
 * leaves anything unusual (another field, a wire type, invalid UTF-8, a truncated length) to
 * protobuf-es's fromBinary, which then decides, so the result is always what fromBinary gives.
 * On the VerifyToken hot path this is about 1.5 µs of the ~60 µs a call costs.
 */
export function stringFieldsDecoder(schema: DescMessage): ((bytes: Buffer) => unknown) | undefined {
  const fields = new Map<number, string>();
  for (const field of schema.fields) {
    if (field.fieldKind !== "scalar" || field.scalar !== ScalarType.STRING || field.oneof) return undefined;
    fields.set(field.number, field.localName);
  }
  const template = create(schema) as Record<string, unknown>;
  const slow = (bytes: Buffer) => fromBinary(schema, bytes);

  return (bytes) => {
    const message = { ...template };
    let at = 0;
    while (at < bytes.length) {
      const tag = bytes[at++] as number; // field numbers below 16 fit one byte
      const name = tag & 0x80 || (tag & 7) !== 2 ? undefined : fields.get(tag >>> 3);
      if (name === undefined) return slow(bytes);
      let length = 0;
      for (let shift = 0; ; shift += 7) {
        if (at >= bytes.length || shift > 21) return slow(bytes);
        const byte = bytes[at++] as number;
        length |= (byte & 0x7f) << shift;
        if (!(byte & 0x80)) break;
      }
      const end = at + length;
      if (end > bytes.length || !isUtf8(bytes.subarray(at, end))) return slow(bytes);
      message[name] = bytes.toString("utf8", at, end);
      at = end;
    }
    return message;
  };
}

/** A grpc-js method definition whose (de)serializers are protobuf-es's, for any method kind. */
export function grpcMethodDefinition(
  service: DescService,
  method: DescMethod,
): grpc.MethodDefinition<unknown, unknown> {
  const encoded = new WeakMap<object, Buffer>();
  const decodeRequest =
    stringFieldsDecoder(method.input) ?? ((bytes: Buffer) => fromBinary(method.input, bytes));
  return {
    path: `/${service.typeName}/${method.name}`,
    originalName: method.localName,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    // biome-ignore lint/suspicious/noExplicitAny: grpc-js passes messages untyped
    requestSerialize: (message: any) => Buffer.from(toBinary(method.input, message)),
    requestDeserialize: (bytes: Buffer) => {
      try {
        return decodeRequest(bytes);
      } catch {
        return UNDECODABLE;
      }
    },
    // biome-ignore lint/suspicious/noExplicitAny: grpc-js passes messages untyped
    responseSerialize: (message: any) => {
      // A handler that answers with the same (unchanged) message object again, like VerifyToken
      // for a cached token, gets its encoding reused.
      let bytes = encoded.get(message);
      if (!bytes) {
        bytes = Buffer.from(toBinary(method.output, message));
        encoded.set(message, bytes);
      }
      return bytes;
    },
    responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
  };
}

/** Adds a service to a grpc-js server with handlers keyed by each method's localName. */
export function addGrpcService(
  server: grpc.Server,
  service: DescService,
  handlers: Record<string, grpc.UntypedHandleCall>,
): void {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) definition[method.localName] = grpcMethodDefinition(service, method);
  server.addService(definition as grpc.ServiceDefinition, handlers);
}

/** Adds every (unary) method of a Connect ServiceImpl to a grpc-js server. */
export function addConnectService<S extends DescService>(
  server: grpc.Server,
  service: S,
  impl: Partial<ServiceImpl<S>>,
): void {
  // Connect's own spec binds each method and answers UNIMPLEMENTED for those a partial
  // implementation lacks, as its router does.
  const spec = createServiceImplSpec(service, impl);
  const handlers: Record<string, grpc.UntypedHandleCall> = {};
  for (const method of service.methods) {
    const methodSpec = spec.methods[method.localName];
    if (methodSpec?.kind !== "unary") throw new Error(`${method.name}: only unary methods are adapted`);
    handlers[method.localName] = unaryHandler(
      service,
      method,
      methodSpec.impl as (req: unknown, ctx: HandlerContext) => unknown,
    ) as grpc.handleUnaryCall<unknown, unknown>;
  }
  addGrpcService(server, service, handlers);
}

export interface GrpcServerOptions<S extends DescService> {
  service: S;
  impl: Partial<ServiceImpl<S>>;
  maxReceiveBytes: number;
}

export interface GrpcServer {
  server: grpc.Server;
  health: HealthStatus;
  listen(host: string, port: number): Promise<number>;
  /** Stops taking calls, lets running ones finish (up to graceMs), then closes. */
  stop(graceMs: number): Promise<void>;
}

export function createGrpcServer<S extends DescService>(options: GrpcServerOptions<S>): GrpcServer {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxReceiveBytes,
    "grpc.max_send_message_length": 4 * 1024 * 1024,
    // channelz bookkeeping runs on every call (about 7% of a warm VerifyToken) and nothing here reads it.
    "grpc.enable_channelz": 0,
  });
  addConnectService(server, options.service, options.impl);

  const health = addHealthService(server, ["", options.service.typeName]);
  // grpcurl and `buf curl` discover the API through reflection (v1 and v1alpha).
  addReflectionService(server, [options.service, HealthService], [file_google_rpc_error_details]);

  return {
    server,
    health,
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, boundPort) =>
          err ? reject(err) : resolve(boundPort),
        );
      }),
    stop: (graceMs) =>
      new Promise((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
