import type { IncomingMessage, ServerResponse } from "node:http";
import { Code } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";

/**
 * The HTTP conventions of the examples facing the mini-program (the reference BFF and services
 * guarded with protect()), which the mini-program SDK relies on: a bearer token in, and errors
 * out as {"error": {"code", "reason", "message"}} with the matching status.
 */

/** The request's bearer token, or "" when there is none. */
export function bearerToken(req: IncomingMessage): string {
  return /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
}

/**
 * Connect's own mapping of codes to HTTP statuses, except that a deadline the identity service
 * missed is 503 like any other outage (never a 401: the client must keep its tokens).
 */
export function httpStatusOf(code: Code): number {
  return code === Code.DeadlineExceeded ? 503 : codeToHttpStatus(code);
}

export function sendError(res: ServerResponse, code: Code, reason: string, message: string): void {
  sendJson(res, httpStatusOf(code), { error: { code: Code[code], reason, message } });
}

/** A JSON answer, or an empty one when there is no body. */
export function sendJson(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) return void res.writeHead(status).end();
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}
