import type { Tracer } from "@opentelemetry/api";
import CircuitBreaker from "opossum";
import { IdentityError } from "../domain/errors.js";
import type { Logger } from "../observability/logger.js";
import { inSpan } from "../observability/tracing.js";

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

export function classifyStorageError(err: unknown, backend: Backend): unknown {
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
 * Errors that say the dependency cannot be reached at all (refused, reset, shut down, not
 * answering a command), as opposed to one slow statement, a conflict or a bug of ours: only these
 * open the breaker.
 */
function isUnreachable(err: unknown, backend: Backend): boolean {
  if (backend === "redis") return isRedisOutage(err);
  return errorCodes(err).some((c) => NETWORK_CODES.has(c) || /^(08|57P)/.test(c));
}

export type Backend = "postgres" | "redis";

/** How a call failed the dependency; undefined: it answered (a store's own refusal is an answer). */
function failureKind(err: unknown): "unavailable" | "conflict" | "other" | undefined {
  if (!(err instanceof IdentityError)) return "other";
  if (err.reason === "STORAGE_UNAVAILABLE") return "unavailable";
  return err.reason === "STORAGE_CONFLICT" ? "conflict" : undefined;
}

/**
 * One dependency (Postgres, Redis) as every port on it sees it: how many calls may wait on it at
 * once, and a circuit breaker (opossum) that opens when it cannot be reached.
 *
 * The cap: a dependency that stops answering (a lock, an outage) would otherwise collect every
 * call that arrives, each holding its request's memory, until the statement or command timeouts
 * end them. The breaker: with Postgres down, postgres.js hands each failed connection attempt
 * only one waiting query and keeps the rest queued until their callers' deadlines, so callers saw
 * DEADLINE_EXCEEDED instead of UNAVAILABLE (docs/reliability.md). Once calls in a row found the
 * dependency unreachable, calls answer STORAGE_UNAVAILABLE at once; one call a second goes
 * through to try it, and the first that reaches it closes the breaker.
 */
export interface Dependency {
  readonly backend: Backend;
  /** Calls waiting on it now. */
  readonly inFlight: number;
  /** Open: calls are refused without trying the dependency. */
  readonly unreachable: boolean;
  /** `operation` names the call in its trace span (the port method). */
  run<R>(call: () => Promise<R>, operation?: string): Promise<R>;
  close(): void;
}

export interface DependencyOptions {
  /** Calls that may wait on it at once (STORAGE_MAX_IN_FLIGHT). */
  maxInFlight: number;
  /** How long the breaker stays open before a call tries the dependency again. */
  retryAfterMs?: number;
  log?: Logger;
  /**
   * Hears of every call: its seconds and, when it failed, how (unavailable: unreachable or
   * refused by the breaker; busy: the cap; conflict: a serialization conflict; other: a bug).
   */
  observe?: (seconds: number, failure?: "unavailable" | "busy" | "conflict" | "other") => void;
  /** Traces on: each call in a span named after the dependency and the port method. */
  tracer?: Tracer;
}

/** Calls in a row that found the dependency unreachable, with no answer between, open the breaker. */
const OPEN_AFTER_FAILURES = 3;

export function dependency(backend: Backend, options: DependencyOptions): Dependency {
  let inFlight = 0;
  const breaker = new CircuitBreaker((call: () => Promise<unknown>) => call(), {
    // Every call already has its deadline (statement and command timeouts, the caller's).
    timeout: false,
    resetTimeout: options.retryAfterMs ?? 1000,
    // opossum opens on the share of failed calls among those started in a window. With Postgres
    // stopped that share stayed near 4% (npm run chaos: ~4 failures a second against ~100 calls
    // started, the rest waiting in postgres.js), so it never opened: it is opened below, after
    // OPEN_AFTER_FAILURES calls in a row found the dependency unreachable. A failed trial call
    // reopens it (opossum's own rule).
    errorThresholdPercentage: 100,
    // Filtered errors count as answers: the dependency was reached.
    errorFilter: (err: unknown) => !isUnreachable(err, backend),
  });
  let failuresInARow = 0;
  breaker.on("success", () => {
    failuresInARow = 0;
  });
  breaker.on("failure", () => {
    if (++failuresInARow >= OPEN_AFTER_FAILURES && breaker.closed) breaker.open();
  });
  // One line when it opens and one when it closes, not one for each failed try in between.
  const log = options.log;
  let announced = false;
  breaker.on("open", () => {
    if (announced) return;
    announced = true;
    log?.warn(`${backend} not answering: calls fail at once, one a second tries it again`, { backend });
  });
  breaker.on("close", () => {
    announced = false;
    log?.info(`${backend} answering again`, { backend });
  });

  return {
    backend,
    get inFlight() {
      return inFlight;
    },
    get unreachable() {
      return !breaker.closed;
    },
    run<R>(call: () => Promise<R>, operation = "call"): Promise<R> {
      if (!options.tracer) return run(call);
      return inSpan(options.tracer, `${backend} ${operation}`, { "db.system": backend }, () => run(call));
    },
    close: () => breaker.shutdown(),
  };

  async function run<R>(call: () => Promise<R>): Promise<R> {
    if (inFlight >= options.maxInFlight) {
      options.observe?.(0, "busy");
      throw new IdentityError("STORAGE_UNAVAILABLE", `${backend} is not keeping up, retry later`);
    }
    inFlight++;
    const startedAt = performance.now();
    const took = () => (performance.now() - startedAt) / 1000;
    try {
      const result = (await breaker.fire(call)) as R;
      options.observe?.(took());
      return result;
    } catch (err) {
      const failure =
        err instanceof Error && CircuitBreaker.isOurError(err)
          ? new IdentityError("STORAGE_UNAVAILABLE", `${backend} is not answering, retry later`)
          : classifyStorageError(err, backend);
      options.observe?.(took(), failureKind(failure));
      throw failure;
    } finally {
      inFlight--;
    }
  }
}

/**
 * Wraps every async method of a port so its failures are classified once, here, and, given a
 * dependency, so its cap and breaker apply to every call.
 */
export function guardPort<T extends object>(port: T, on: Dependency | Backend): T {
  const guarded: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(port)) {
    if (typeof value !== "function") {
      guarded[name] = value;
    } else if (typeof on === "string") {
      guarded[name] = async (...args: unknown[]) => {
        try {
          return await value.apply(port, args);
        } catch (err) {
          throw classifyStorageError(err, on);
        }
      };
    } else {
      guarded[name] = (...args: unknown[]) => on.run(() => value.apply(port, args), name);
    }
  }
  return guarded as T;
}
