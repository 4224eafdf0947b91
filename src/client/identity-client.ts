import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { IdentityService } from "../gen/identity/v1/identity_pb.js";

/**
 * The client for BFF code: the whole IdentityService over Connect (binary, HTTP/2; cleartext
 * inside the network, or TLS with an https:// baseUrl), with a deadline on every call.
 *
 *   const identity = createIdentityClient({ baseUrl: "http://identity:8080" });
 *   const { tokens, user } = await identity.login({ code, client: { ip, userAgent } });
 */
export function createIdentityClient(options: {
  baseUrl: string;
  timeoutMs?: number;
  /** This caller's key (the service's CALLERS), sent as `authorization: Bearer` on every call. */
  callerKey?: string;
  /**
   * For an https:// baseUrl: the CA that signed the service's certificate (when not a public
   * one), and this caller's client certificate and key under mTLS (PEM).
   */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
}) {
  const { callerKey } = options;
  return createClient(
    IdentityService,
    createConnectTransport({
      baseUrl: options.baseUrl,
      httpVersion: "2",
      useBinaryFormat: true,
      defaultTimeoutMs: options.timeoutMs ?? 5000,
      ...(options.tls ? { nodeOptions: options.tls } : {}),
      interceptors: callerKey
        ? [
            (next) => (req) => {
              req.header.set("authorization", `Bearer ${callerKey}`);
              return next(req);
            },
          ]
        : [],
    }),
  );
}

export type IdentityClient = ReturnType<typeof createIdentityClient>;
