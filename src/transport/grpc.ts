import { create, type DescMethod, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createHandlerContext, type ServiceImpl } from "@connectrpc/connect";
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

/** Encodes a ConnectError as grpc-js status, with google.rpc.Status in grpc-status-details-bin. */
export function toGrpcStatus(err: ConnectError): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  if (err.details.length > 0) {
    const details = err.details.map((d) =>
      "desc" in d
        ? anyPack(d.desc, create(d.desc, d.value as never))
        : { typeUrl: `type.googleapis.com/${d.type}`, value: d.value },
    );
    const status = create(StatusSchema, { code: err.code, message: err.rawMessage, details });
    metadata.set("grpc-status-details-bin", Buffer.from(toBinary(StatusSchema, status)));
  }
  return { code: err.code as number as grpc.status, details: err.rawMessage, metadata };
}

function unaryHandler(service: DescService, method: DescMethod, impl: ServiceImpl<DescService>) {
  const call = (impl as Record<string, unknown>)[method.localName] as (
    req: unknown,
    ctx: unknown,
  ) => Promise<unknown>;
  const url = `/${service.typeName}/${method.name}`;
  return (serverCall: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    if (serverCall.request === UNDECODABLE) {
      callback(
        toGrpcStatus(new ConnectError("request is not a valid protobuf message", Code.InvalidArgument)),
      );
      return;
    }
    const deadline = serverCall.getDeadline();
    const timeoutMs =
      deadline instanceof Date
        ? deadline.getTime() - Date.now()
        : Number.isFinite(deadline)
          ? Number(deadline) - Date.now()
          : undefined;
    const context = createHandlerContext({
      service,
      method,
      protocolName: "grpc",
      requestMethod: "POST",
      url,
      timeoutMs,
    });
    Promise.resolve(call(serverCall.request, context)).then(
      (response) => callback(null, response),
      (err: unknown) => {
        const connectError =
          err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal);
        callback(toGrpcStatus(connectError));
      },
    );
  };
}

/** A grpc-js method definition whose (de)serializers are protobuf-es's, for any method kind. */
export function grpcMethodDefinition(
  service: DescService,
  method: DescMethod,
): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${service.typeName}/${method.name}`,
    originalName: method.localName,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    // biome-ignore lint/suspicious/noExplicitAny: grpc-js passes messages untyped
    requestSerialize: (message: any) => Buffer.from(toBinary(method.input, message)),
    requestDeserialize: (bytes: Buffer) => {
      try {
        return fromBinary(method.input, bytes);
      } catch {
        return UNDECODABLE;
      }
    },
    // biome-ignore lint/suspicious/noExplicitAny: grpc-js passes messages untyped
    responseSerialize: (message: any) => Buffer.from(toBinary(method.output, message)),
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
export function addConnectService(
  server: grpc.Server,
  service: DescService,
  impl: ServiceImpl<DescService>,
): void {
  const handlers: Record<string, grpc.UntypedHandleCall> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") throw new Error(`${method.name}: only unary methods are adapted`);
    handlers[method.localName] = unaryHandler(service, method, impl) as grpc.handleUnaryCall<
      unknown,
      unknown
    >;
  }
  addGrpcService(server, service, handlers);
}

export interface GrpcServerOptions {
  service: DescService;
  impl: ServiceImpl<DescService>;
  maxReceiveBytes: number;
}

export interface GrpcServer {
  server: grpc.Server;
  health: HealthStatus;
  listen(host: string, port: number): Promise<number>;
  /** Stops taking calls, lets running ones finish (up to graceMs), then closes. */
  stop(graceMs: number): Promise<void>;
}

export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxReceiveBytes,
    "grpc.max_send_message_length": 4 * 1024 * 1024,
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
