import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { IdentityService } from "../gen/identity/v1/identity_pb.js";

/**
 * The client for BFF code: the whole IdentityService over Connect (binary, HTTP/2 without TLS
 * inside the network), with a deadline on every call.
 *
 *   const identity = createIdentityClient({ baseUrl: "http://identity:8080" });
 *   const { tokens, user } = await identity.login({ code, client: { ip, userAgent } });
 */
export function createIdentityClient(options: {
  baseUrl: string;
  timeoutMs?: number;
  /** This caller's key (the service's CALLERS), sent as `authorization: Bearer` on every call. */
  callerKey?: string;
}) {
  const { callerKey } = options;
  return createClient(
    IdentityService,
    createConnectTransport({
      baseUrl: options.baseUrl,
      httpVersion: "2",
      useBinaryFormat: true,
      defaultTimeoutMs: options.timeoutMs ?? 5000,
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
