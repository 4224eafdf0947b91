import type { DescMethod, Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Tracer } from "@opentelemetry/api";
import { IdentityError } from "../../domain/errors.js";
import type { Logger } from "../../observability/logger.js";
import type { CallMetrics } from "../../observability/metrics.js";
import { observeCalls, traceCalls } from "../../observability/rpc-calls.js";
import { requestRules } from "./request-rules.js";

export interface GuardOptions {
  /** A call whose caller set no deadline gets this one. */
  defaultTimeoutMs?: number;
  /** Where the call's latency and errors are counted; none: not counted. */
  metrics?: CallMetrics;
  /** Traces on: each call in a span of its own. */
  tracer?: Tracer;
}

/**
 * Runs an RPC's handler on a request that keeps the proto's rules, within its deadline, with its
 * errors mapped to what the client sees. A synchronous handler's answer stays synchronous
 * (VerifyToken from the cache: no promise hops, no timer).
 */
export function guarded<Req extends Message, Res>(
  log: Logger,
  method: DescMethod,
  handler: (req: Req, context: HandlerContext) => Promise<Res> | Res,
  options: GuardOptions = {},
) {
  const checkRules = requestRules<Req>(method.input);
  const calls = observeCalls(log, method.name, options.metrics);
  const traced = options.tracer ? traceCalls(options.tracer, method) : undefined;
  const run = (req: Req, context: HandlerContext): Promise<Res> | Res => {
    const startedAt = performance.now();
    try {
      checkRules?.(req);
      const result = handler(req, context);
      if (!(result instanceof Promise)) {
        calls.succeeded(context, startedAt);
        return result;
      }
      return withinDeadline(result, context, options.defaultTimeoutMs).then(
        (response) => {
          calls.succeeded(context, startedAt);
          return response;
        },
        (err: unknown) => {
          throw calls.failed(err, context, startedAt);
        },
      );
    } catch (err) {
      throw calls.failed(err, context, startedAt);
    }
  };
  return traced ? (req: Req, context: HandlerContext) => traced(context, () => run(req, context)) : run;
}

/**
 * The answer, or DEADLINE_EXCEEDED once the caller's deadline (else the default) has passed, or
 * CANCELED once the caller went away: whatever the call still waits on, the caller is answered
 * in time. What the work still holds is bounded below it (DATABASE_STATEMENT_TIMEOUT, the WeChat
 * and Redis timeouts), so nothing it started runs on for long. Every transport's context signal
 * already aborts at the caller's deadline; a timer of our own runs only for the default.
 */
function withinDeadline<T>(work: Promise<T>, context: HandlerContext, defaultTimeoutMs?: number): Promise<T> {
  const { signal } = context;
  const callerTimeoutMs = context.timeoutMs();
  const timeoutMs = callerTimeoutMs ?? defaultTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const ended = new Promise<never>((_, reject) => {
    const deadlineExceeded = () =>
      reject(
        new IdentityError("DEADLINE_EXCEEDED", `no answer within the call's deadline (${timeoutMs} ms)`),
      );
    if (callerTimeoutMs === undefined && defaultTimeoutMs !== undefined) {
      timer = setTimeout(deadlineExceeded, defaultTimeoutMs);
    }
    onAbort = () => {
      if (ConnectError.from(signal.reason).code === Code.DeadlineExceeded) deadlineExceeded();
      else reject(new ConnectError("the caller cancelled the call", Code.Canceled));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  // The work's own failure after the caller was answered must not go unhandled.
  work.catch(() => {});
  return Promise.race([work, ended]).finally(() => {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener("abort", onAbort);
  });
}

/**
 * guarded() for a server-streaming RPC: the request checked against the proto's rules, the
 * stream's errors mapped and counted like a unary call's (its duration is the subscription's).
 * No default deadline: a stream lives until its caller goes away or the instance stops.
 */
export function guardedStream<Req extends Message, Res>(
  log: Logger,
  method: DescMethod,
  handler: (req: Req, context: HandlerContext) => AsyncIterable<Res>,
  options: GuardOptions = {},
) {
  const checkRules = requestRules<Req>(method.input);
  const calls = observeCalls(log, method.name, options.metrics);
  return async function* (req: Req, context: HandlerContext): AsyncGenerator<Res> {
    const startedAt = performance.now();
    try {
      checkRules?.(req);
      yield* handler(req, context);
      calls.succeeded(context, startedAt);
    } catch (err) {
      throw calls.failed(err, context, startedAt);
    }
  };
}
