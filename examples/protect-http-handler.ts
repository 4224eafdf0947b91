import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from "node:http";
import { createVerifier, type VerifiedUser, type Verifier, VerifyError } from "../src/client/index.js";

/**
 * Guarding an internal service's HTTP handler with the verifier (in your code, import from
 * "wechat-identity/client"). A bad token is 401 with the reason, so the caller refreshes or logs
 * in again; an unreachable identity service is 503, so the caller keeps its tokens and retries.
 * Error bodies have the reference BFF's shape, {"error": {"code", "reason", "message"}}, which
 * the mini-program SDK reads.
 */
export function protect(
  verifier: Verifier,
  handler: (req: IncomingMessage, res: ServerResponse, user: VerifiedUser) => void,
): RequestListener {
  return async (req, res) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (!token)
      return reply(res, 401, failure(401, "TOKEN_MISSING", "an Authorization: Bearer token is required"));
    try {
      handler(req, res, await verifier.verify(token));
    } catch (err) {
      if (!(err instanceof VerifyError)) throw err;
      const status = err.kind === "unauthenticated" ? 401 : err.kind === "unavailable" ? 503 : 400;
      // An outage's message names internal addresses: the caller only needs to know to retry.
      const message = status === 503 ? "the identity service cannot answer; try again" : err.message;
      reply(res, status, failure(status, err.reason, message));
    }
  };
}

const CODE_OF_STATUS: Record<number, string> = {
  400: "InvalidArgument",
  401: "Unauthenticated",
  503: "Unavailable",
};

function failure(status: number, reason: string, message: string) {
  return { error: { code: CODE_OF_STATUS[status], reason, message } };
}

function reply(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

// node dist/examples/protect-http-handler.js: an internal service on :3000 behind the verifier.
if (process.argv[1]?.endsWith("protect-http-handler.js")) {
  const verifier = createVerifier({
    address: process.env.IDENTITY_GRPC ?? "127.0.0.1:50051",
    cacheTtlMs: 5000,
  });
  createServer(
    protect(verifier, (_req, res, user) => reply(res, 200, { hello: user.openid, roles: user.roles })),
  ).listen(3000);
}
