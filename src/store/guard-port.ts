import { IdentityError } from "../domain/errors.js";

/**
 * Turns a storage driver's failure into what the client should see: an outage of Postgres or
 * Redis is UNAVAILABLE (never an auth error: clients drop their tokens on those), a serialization
 * conflict is ABORTED (retry). Anything else is left alone, so a bug still surfaces as INTERNAL.
 * The driver's message is not copied: drizzle's includes the query parameters.
 */

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
]);

/**
 * SQLSTATE classes/codes that mean "the database cannot serve right now": connection (08),
 * authorization (28), missing database (3D000), resources (53), shutdown (57P), lock timeout,
 * and a statement cancelled by DATABASE_STATEMENT_TIMEOUT (57014): a database too slow to answer.
 */
function isPostgresOutage(code: string): boolean {
  return /^(08|28|53|57P)/.test(code) || code === "3D000" || code === "55P03" || code === "57014";
}

/** The string `code`s along an error's cause chain (drivers wrap each other's errors). */
export function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
  }
  return codes;
}

function isRedisOutage(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === "ReplyError") return false; // Redis answered: a bug of ours, not an outage
  return (
    err.name === "MaxRetriesPerRequestError" ||
    /Connection is closed|Command timed out|Stream isn't writeable|Reached the max retries/i.test(
      err.message,
    ) ||
    errorCodes(err).some((c) => NETWORK_CODES.has(c))
  );
}

export function classifyStorageError(err: unknown, backend: "postgres" | "redis"): unknown {
  if (err instanceof IdentityError) return err;
  if (backend === "redis") {
    return isRedisOutage(err)
      ? new IdentityError("STORAGE_UNAVAILABLE", "session store unavailable, retry later", {}, { cause: err })
      : err;
  }
  const codes = errorCodes(err);
  if (codes.includes("40001") || codes.includes("40P01")) {
    return new IdentityError("STORAGE_CONFLICT", "concurrent update, retry", {}, { cause: err });
  }
  if (codes.some((c) => NETWORK_CODES.has(c) || isPostgresOutage(c))) {
    return new IdentityError("STORAGE_UNAVAILABLE", "database unavailable, retry later", {}, { cause: err });
  }
  return err;
}

/**
 * How many calls may wait on one dependency at once, shared by every port on it. A dependency
 * that stops answering (a lock, an outage) would otherwise collect every call that arrives, each
 * holding its request's memory, until the statement or command timeouts end them.
 */
export interface InFlightLimit {
  readonly max: number;
  current: number;
}

export function inFlightLimit(max: number): InFlightLimit {
  return { max, current: 0 };
}

/**
 * Wraps every async method of a port so its failures are classified once, here, and, with a
 * limit, so a call past it is answered STORAGE_UNAVAILABLE at once instead of joining the queue.
 */
export function guardPort<T extends object>(
  port: T,
  backend: "postgres" | "redis",
  limit?: InFlightLimit,
): T {
  const guarded: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(port)) {
    guarded[name] =
      typeof value === "function"
        ? async (...args: unknown[]) => {
            if (limit && limit.current >= limit.max) {
              throw new IdentityError("STORAGE_UNAVAILABLE", `${backend} is not keeping up, retry later`);
            }
            if (limit) limit.current++;
            try {
              return await value.apply(port, args);
            } catch (err) {
              throw classifyStorageError(err, backend);
            } finally {
              if (limit) limit.current--;
            }
          }
        : value;
  }
  return guarded as T;
}
