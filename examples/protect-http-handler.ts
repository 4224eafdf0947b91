import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from "node:http";
import { Code } from "@connectrpc/connect";
import {
  createLocalVerifier,
  createVerifier,
  requirePermission,
  type VerifiedUser,
  type Verifier,
  VerifyError,
} from "../src/client/index.js";
import { bearerToken, sendError, sendJson } from "./http-json.js";

/**
 * Guarding an internal service's HTTP handler with a verifier (in your code, import from
 * "wechat-identity/client"): the local one (createLocalVerifier) or the remote one
 * (createVerifier), which answer alike. A bad token is 401 with the reason, so the caller refreshes or logs
 * in again; an unreachable identity service is 503, so the caller keeps its tokens and retries.
 * Error bodies have the reference BFF's shape, {"error": {"code", "reason", "message"}}, which
 * the mini-program SDK reads.
 */
export function protect(
  verifier: Pick<Verifier, "verify">,
  handler: (req: IncomingMessage, res: ServerResponse, user: VerifiedUser) => void,
): RequestListener {
  return async (req, res) => {
    const token = bearerToken(req);
    if (!token)
      return sendError(
        res,
        Code.Unauthenticated,
        "TOKEN_MISSING",
        "an Authorization: Bearer token is required",
      );
    try {
      handler(req, res, await verifier.verify(token));
    } catch (err) {
      if (!(err instanceof VerifyError)) throw err;
      if (err.kind === "unavailable") {
        // The verifier's message names internal addresses: the caller only needs to know to retry.
        return sendError(res, Code.Unavailable, err.reason, "the identity service cannot answer; try again");
      }
      const code =
        err.kind === "unauthenticated"
          ? Code.Unauthenticated
          : err.kind === "forbidden"
            ? Code.PermissionDenied
            : Code.InvalidArgument;
      sendError(res, code, err.reason, err.message);
    }
  };
}

// node dist/examples/protect-http-handler.js: an internal service on :3000 behind the verifier.
if (process.argv[1]?.endsWith("protect-http-handler.js")) {
  const address = process.env.IDENTITY_GRPC ?? "127.0.0.1:50051";
  const callerKey = process.env.IDENTITY_CALLER_KEY || undefined;
  // VerifyToken per request: every answer is the service's own, at one round trip each.
  const remote = createVerifier({ address, callerKey, cacheTtlMs: 5000 });
  // The recommended path for a busy service: no call per request, and still every logout (a few
  // ms after it), through WatchRevocations (CALLERS must allow it). It trades that delay, and it
  // refuses to judge once cut off longer than maxStalenessMs: then it asks the remote verifier,
  // so an outage of the stream costs round trips, not 503s.
  const verifier =
    process.env.IDENTITY_VERIFY === "remote"
      ? remote
      : createLocalVerifier({ address, callerKey, maxStalenessMs: 10_000, fallback: remote });
  createServer(
    protect(verifier, (req, res, user) => {
      // Every order, not only the caller's own, only for a token that may read them all (403 otherwise).
      if (req.url === "/orders/all") requirePermission(user, "order:read:all");
      sendJson(res, 200, { hello: user.openid, roles: user.roles, permissions: user.permissions });
    }),
  ).listen(3000);
}
