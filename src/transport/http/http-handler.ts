import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import {
  Code,
  ConnectError,
  createConnectRouter,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import { errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "../../observability/logger.js";
import { errorSummary } from "../../util/error-summary.js";
import { errorWithInfo } from "../../wire/errors.js";
import { callerAddressKey } from "../caller-address.js";
import { type CallerAuth, callerCertificateKey, callerNameKey } from "../caller-auth.js";
import type { MountedService } from "../mounted-service.js";
import { verifiedCertificateName } from "../tls.js";
import type { RequestHandler } from "./dual-protocol-server.js";
import { explainingTransportErrors } from "./transport-errors.js";

/** More HTTP endpoints under a path prefix, such as the built-in WeChat sandbox under /sandbox. */
export interface HttpRoute {
  /** "/sandbox": the route gets "/sandbox" and everything under it. */
  prefix: string;
  /**
   * Serves a request; `path` is the URL after the prefix ("/" at least), with its query. False
   * when nothing is there: answered 404.
   */
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean>;
}

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  return v4.startsWith("127.") || address === "::1";
}

/** A route that answers loopback callers only; anyone else gets the 404 of a path that is not there. */
export function loopbackOnly(handle: HttpRoute["handle"]): HttpRoute["handle"] {
  return (req, res, path) =>
    isLoopbackAddress(req.socket.remoteAddress) ? handle(req, res, path) : Promise.resolve(false);
}

/** Each check's state now (true: fine); a probe passes when every check does. */
export interface Health {
  /** The process can serve: restart it when not. */
  liveness(): Record<string, boolean>;
  /** It should get traffic: started, not draining, its dependencies reachable, keys loaded. */
  readiness(): Record<string, boolean>;
}

export interface HttpHandlerOptions {
  services: readonly MountedService[];
  maxRequestBytes: number;
  /** The public signing keys, served at /.well-known/jwks.json. */
  jwks: () => unknown;
  /** /livez and /readyz (and /healthz, readiness's old name): 200 while fine, 503 with the checks otherwise. */
  health: Health;
  routes?: readonly HttpRoute[];
  /** When given, the service's calls must come from allowed callers; health, JWKS and routes stay open. */
  callerAuth?: CallerAuth;
  /** mTLS: a caller may be known by its verified client certificate. */
  certificates?: boolean;
  log: Logger;
}

type NodeRequest = IncomingMessage | Http2ServerRequest;
// connect-node's response type: the http1 or http2 response without its differing write() overloads.
type NodeResponse = Parameters<typeof universalResponseToNodeResponse>[1];

function sendJson(res: NodeResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/**
 * The HTTP port: Connect, gRPC-Web and gRPC over HTTP/1.1 and h2c (for the BFF), plus health,
 * JWKS and whatever routes the app mounts.
 */
export function createHttpHandler(options: HttpHandlerOptions): RequestHandler {
  const routes = options.routes ?? [];
  const fallback = (req: NodeRequest, res: NodeResponse) => {
    const url = req.url ?? "/";
    const path = url.split("?")[0] ?? "/";
    if (req.method === "GET" && (path === "/livez" || path === "/readyz" || path === "/healthz")) {
      const checks = path === "/livez" ? options.health.liveness() : options.health.readiness();
      const ok = Object.values(checks).every(Boolean);
      return sendJson(res, ok ? 200 : 503, { status: ok ? "SERVING" : "NOT_SERVING", checks });
    }
    if (req.method === "GET" && path === "/.well-known/jwks.json") {
      // Verifiers refetch on an unknown kid; a short max-age keeps rotation quick to reach them.
      return sendJson(res, 200, options.jwks(), { "cache-control": "public, max-age=300" });
    }
    const route = routes.find((r) => path === r.prefix || path.startsWith(`${r.prefix}/`));
    if (route) {
      void route
        .handle(req as IncomingMessage, res as ServerResponse, url.slice(route.prefix.length) || "/")
        .then((served) => {
          if (!served) sendJson(res, 404, { error: "not found" });
        });
      return;
    }
    sendJson(res, 404, { error: "not found" });
  };

  // connect-node's router, dispatched here rather than by connectNodeAdapter so that each method's
  // handler can be wrapped (transport errors explained) and GET refused before Connect sees it.
  const router = createConnectRouter({
    readMaxBytes: options.maxRequestBytes,
    acceptCompression: [compressionGzip, compressionBrotli],
    interceptors: options.callerAuth ? [callerAuthInterceptor(options.callerAuth)] : [],
  });
  for (const { service, impl } of options.services) router.service(service, impl);
  const rpcs = new Map(
    router.handlers.map((handler) => [handler.requestPath, explainingTransportErrors(handler)]),
  );

  return (req, res) => {
    const rpc = rpcs.get(req.url?.split("?", 1)[0] ?? "");
    if (!rpc) return fallback(req, res as NodeResponse);
    // Connect allows GET for side-effect-free methods (VerifyToken), which would put bearer tokens
    // into URLs and so into access logs and proxies: every RPC answers POST only.
    if (req.method === "GET") return refuseGet(res as NodeResponse);
    const contextValues = createContextValues().set(callerAddressKey, req.socket.remoteAddress ?? "");
    if (options.certificates) contextValues.set(callerCertificateKey, verifiedCertificateName(req.socket));
    const uReq = universalRequestFromNodeRequest(req, res as NodeResponse, undefined, contextValues);
    rpc(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res as NodeResponse))
      .catch((reason: unknown) => {
        // A caller that went away mid-answer is no news; anything else is a transport fault.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.log.warn("answer not delivered", { rpc: rpc.method.name, cause: errorSummary(reason) });
      });
  };
}

function refuseGet(res: NodeResponse) {
  const error = errorWithInfo(
    "RPCs answer POST only: a token in a URL ends up in access logs",
    Code.InvalidArgument,
    "INVALID_ARGUMENT",
    { field: "method" },
  );
  res.writeHead(405, { "content-type": "application/json", allow: "POST" });
  res.end(Buffer.from(errorToJsonBytes(error, {})));
}

/** Refuses a call from an unknown caller, or of a method its caller may not call. */
function callerAuthInterceptor(auth: CallerAuth): Interceptor {
  return (next) => async (req) => {
    const result = auth.authorize(
      req.method,
      req.header.get("authorization") ?? undefined,
      req.contextValues.get(callerCertificateKey),
    );
    if ("error" in result) throw result.error;
    req.contextValues.set(callerNameKey, result.caller);
    return next(req);
  };
}
