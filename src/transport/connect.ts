import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { type ConnectNodeAdapterOptions, connectNodeAdapter } from "@connectrpc/connect-node";
import type { WechatSandbox } from "../wechat/sandbox.js";
import type { RequestHandler } from "./http-server.js";

export interface HttpHandlerOptions {
  service: DescService;
  impl: ServiceImpl<DescService>;
  maxRequestBytes: number;
  /** The public signing keys, served at /.well-known/jwks.json. */
  jwks: () => unknown;
  /** /healthz answers 200 while true, 503 otherwise (starting, draining). */
  isServing: () => boolean;
  /** The built-in WeChat stand-in, mounted under /sandbox/ when present. */
  sandbox?: WechatSandbox;
}

export const SANDBOX_MOUNT = "/sandbox";

type NodeRequest = IncomingMessage | Http2ServerRequest;
// connect-node's response type: the http1 or http2 response without its differing write() overloads.
type NodeResponse = Parameters<NonNullable<ConnectNodeAdapterOptions["fallback"]>>[1];

function sendJson(res: NodeResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/**
 * The HTTP port: Connect, gRPC-Web and gRPC over HTTP/1.1 and h2c (for the BFF), plus health,
 * JWKS and, in the embedded default, the WeChat sandbox.
 */
export function createHttpHandler(options: HttpHandlerOptions): RequestHandler {
  const fallback = (req: NodeRequest, res: NodeResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (req.method === "GET" && path === "/healthz") {
      const serving = options.isServing();
      return sendJson(res, serving ? 200 : 503, { status: serving ? "SERVING" : "NOT_SERVING" });
    }
    if (req.method === "GET" && path === "/.well-known/jwks.json") {
      // Verifiers refetch on an unknown kid; a short max-age keeps rotation quick to reach them.
      return sendJson(res, 200, options.jwks(), { "cache-control": "public, max-age=300" });
    }
    if (options.sandbox && (path === SANDBOX_MOUNT || path.startsWith(`${SANDBOX_MOUNT}/`))) {
      const sandbox = options.sandbox;
      void sandbox
        .handle(
          req as IncomingMessage,
          res as ServerResponse,
          (req.url ?? "/").slice(SANDBOX_MOUNT.length) || "/",
        )
        .then((served) => {
          if (!served) sendJson(res, 404, { error: "no such sandbox endpoint" });
        });
      return;
    }
    sendJson(res, 404, { error: "not found" });
  };

  return connectNodeAdapter({
    routes: (router) => router.service(options.service, options.impl),
    readMaxBytes: options.maxRequestBytes,
    fallback,
  }) as RequestHandler;
}
