import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  createServiceImplSpec,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { malformedRequestError, toGrpcStatus } from "../../wire/errors.js";
import { grpcMethodDefinition, UNDECODABLE } from "../../wire/grpc-method.js";
import { addressOfPeer, callerAddressKey } from "../caller-address.js";
import { type CallerAuth, callerNameKey } from "../caller-auth.js";
import { certificateName } from "../tls.js";

/**
 * The gRPC transport's adapter: the service is the same Connect ServiceImpl the Connect server
 * mounts, and this walks the generated descriptor to build grpc-js handlers for it. grpc-js
 * rather than connect-node's gRPC serves this port because it is several times faster for small
 * unary calls (docs/architecture.md).
 */

/**
 * The HandlerContext a gRPC call hands to the ServiceImpl, built lazily: creating a full Connect
 * context (abort signal, three Headers) costs a sixth of a warm VerifyToken, and
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
    private readonly caller: string,
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
        // The call's text metadata (x-request-id, traceparent...); binary (-bin) entries are not headers.
        requestHeader: Object.entries(this.serverCall.metadata.getMap()).filter(
          (entry): entry is [string, string] => typeof entry[1] === "string",
        ),
        contextValues: createContextValues()
          .set(callerAddressKey, addressOfPeer(this.serverCall.getPeer()))
          .set(callerNameKey, this.caller),
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

/** The caller of a call, by its key or certificate; an error when it may not call the method. */
function authorizeCaller(
  method: DescMethod,
  serverCall: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>,
  options: AdapterOptions,
): { caller: string } | { error: ConnectError } {
  const { callerAuth, certificates } = options;
  if (!callerAuth) return { caller: "" };
  const authorization = serverCall.metadata.get("authorization")[0];
  // grpc-js gives the certificate only of a connection whose CA check passed.
  return callerAuth.authorize(
    method,
    typeof authorization === "string" ? authorization : undefined,
    certificates ? certificateName(serverCall.getAuthContext()?.sslPeerCertificate) : undefined,
  );
}

/**
 * A server-streaming method (WatchRevocations): each message the ServiceImpl yields is written
 * when the stream can take it, so a caller that reads slowly holds the generator back (and the
 * method's own bound applies) instead of filling grpc-js's buffer.
 */
function serverStreamingHandler(
  service: DescService,
  method: DescMethod,
  call: (req: unknown, ctx: HandlerContext) => AsyncIterable<unknown>,
  options: AdapterOptions,
) {
  const url = `/${service.typeName}/${method.name}`;
  return async (stream: grpc.ServerWritableStream<unknown, unknown>) => {
    const end = (err: unknown) => {
      const connectError =
        err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal);
      stream.emit("error", toGrpcStatus(connectError));
    };
    if (stream.request === UNDECODABLE) return end(malformedRequestError());
    const auth = authorizeCaller(method, stream, options);
    if ("error" in auth) return end(auth.error);
    const context = new LazyGrpcContext(
      service,
      method,
      url,
      stream as unknown as grpc.ServerUnaryCall<unknown, unknown>,
      auth.caller,
    ) as HandlerContext;
    try {
      for await (const message of call(stream.request, context)) {
        if (stream.cancelled) break;
        if (!stream.write(message)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              stream.off("drain", done);
              stream.off("cancelled", done);
              resolve();
            };
            stream.once("drain", done);
            stream.once("cancelled", done);
          });
        }
      }
      if (!stream.cancelled) stream.end();
    } catch (err) {
      if (!stream.cancelled) end(err);
    }
  };
}

function unaryHandler(
  service: DescService,
  method: DescMethod,
  call: (req: unknown, ctx: HandlerContext) => Promise<unknown> | unknown,
  options: AdapterOptions,
) {
  const url = `/${service.typeName}/${method.name}`;
  return (serverCall: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    if (serverCall.request === UNDECODABLE) {
      fail(callback, malformedRequestError());
      return;
    }
    const auth = authorizeCaller(method, serverCall, options);
    if ("error" in auth) return fail(callback, auth.error);
    const { caller } = auth;
    let result: unknown;
    try {
      result = call(
        serverCall.request,
        new LazyGrpcContext(service, method, url, serverCall, caller) as HandlerContext,
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

export interface AdapterOptions {
  /** When given, every call must come from a caller allowed the method. */
  callerAuth?: CallerAuth;
  /** mTLS: a caller may be known by its verified client certificate. */
  certificates?: boolean;
}

/** Adds every unary and server-streaming method of a Connect ServiceImpl to a grpc-js server. */
export function addConnectService<S extends DescService>(
  server: grpc.Server,
  service: S,
  impl: Partial<ServiceImpl<S>>,
  options: AdapterOptions = {},
): void {
  // Connect's own spec binds each method and answers UNIMPLEMENTED for those a partial
  // implementation lacks, as its router does.
  const spec = createServiceImplSpec(service, impl);
  const handlers: Record<string, grpc.UntypedHandleCall> = {};
  for (const method of service.methods) {
    const methodSpec = spec.methods[method.localName];
    if (methodSpec?.kind === "unary") {
      handlers[method.localName] = unaryHandler(
        service,
        method,
        methodSpec.impl as (req: unknown, ctx: HandlerContext) => unknown,
        options,
      ) as grpc.handleUnaryCall<unknown, unknown>;
    } else if (methodSpec?.kind === "server_streaming") {
      handlers[method.localName] = serverStreamingHandler(
        service,
        method,
        methodSpec.impl as (req: unknown, ctx: HandlerContext) => AsyncIterable<unknown>,
        options,
      ) as grpc.handleServerStreamingCall<unknown, unknown>;
    } else {
      throw new Error(`${method.name}: only unary and server-streaming methods are adapted`);
    }
  }
  addGrpcService(server, service, handlers);
}
