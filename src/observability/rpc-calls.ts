import { randomUUID } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { ConnectError, type HandlerContext } from "@connectrpc/connect";
import { context as otelContext, SpanStatusCode, type Tracer } from "@opentelemetry/api";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { callerNameKey } from "../transport/caller-auth.js";
import { codeName, mapFailure } from "../wire/errors.js";
import type { Logger } from "./logger.js";
import type { CallMetrics } from "./metrics.js";
import { startCallSpan } from "./tracing.js";

/** The header a caller (or its proxy) names a request with; echoed in the call's log lines. */
export const REQUEST_ID_HEADER = "x-request-id";

/** A caller's request id is kept when it is short and printable; otherwise one is made. */
const ACCEPTABLE_ID = /^[!-~]{1,128}$/;

/** The call's request id: the caller's header (or the gRPC thread's, for a call it handed over), or a new one. */
export function requestIdOf(context: HandlerContext): string {
  const given = context.requestHeader.get(REQUEST_ID_HEADER);
  return given && ACCEPTABLE_ID.test(given) ? given : randomUUID();
}

/**
 * What every RPC records, in one place for both ports and both threads: its latency and errors
 * (metrics), a debug line per call, and a warn / error line per failure of ours (a dependency
 * down, a bug) with the request id, method, caller, status, reason and duration. A user's bad
 * input is counted, not logged above debug.
 */
export function observeCalls(log: Logger, method: string, metrics: CallMetrics | undefined) {
  // The histogram's child per protocol, looked up once: labels cost more than an observation.
  const timers = new Map<string, { observe(seconds: number): void }>();
  const timerOf = (protocol: string) => {
    let timer = timers.get(protocol);
    if (!timer && metrics) {
      timer = metrics.rpcDuration.labels({ method, protocol });
      timers.set(protocol, timer);
    }
    return timer;
  };

  function lineFields(context: HandlerContext, startedAt: number, code: string, reason?: string) {
    const caller = context.values.get(callerNameKey);
    return {
      requestId: requestIdOf(context),
      rpc: method,
      protocol: context.protocolName,
      ...(caller ? { caller } : {}),
      status: code,
      ...(reason ? { reason } : {}),
      durationMs: Math.round((performance.now() - startedAt) * 1000) / 1000,
    };
  }

  return {
    succeeded(context: HandlerContext, startedAt: number): void {
      timerOf(context.protocolName)?.observe((performance.now() - startedAt) / 1000);
      if (log.debugEnabled) log.debug("call", lineFields(context, startedAt, "OK"));
    },

    /** The error the client gets; counted, and logged when it is ours. */
    failed(err: unknown, context: HandlerContext, startedAt: number): ConnectError {
      const { error, reason, log: line } = mapFailure(err);
      const protocol = context.protocolName;
      timerOf(protocol)?.observe((performance.now() - startedAt) / 1000);
      const code = codeName(error.code);
      metrics?.rpcErrors.inc({ method, protocol, code, reason });
      if (line) {
        log[line.level](line.message, { ...lineFields(context, startedAt, code, reason), ...line.fields });
      } else if (log.debugEnabled) {
        log.debug("call", lineFields(context, startedAt, code, reason));
      }
      return error;
    },
  };
}

/**
 * Runs each call of `method` in a server span, child of the trace its `traceparent` names; the
 * use case's WeChat, Postgres and Redis spans are its children. The span says the status and
 * reason of a failure, never its message.
 */
export function traceCalls(tracer: Tracer, method: DescMethod) {
  const name = `${method.parent.typeName}/${method.name}`;
  return <R>(context: HandlerContext, work: () => Promise<R> | R): Promise<R> | R => {
    const { span, context: active } = startCallSpan(tracer, context.requestHeader, name, {
      "rpc.system": context.protocolName === "grpc" ? "grpc" : "connect_rpc",
      "rpc.service": method.parent.typeName,
      "rpc.method": method.name,
      "rpc.protocol": context.protocolName,
    });
    const end = (err?: unknown) => {
      if (err !== undefined) {
        const error = ConnectError.from(err);
        const reason = error.findDetails(ErrorInfoSchema)[0]?.reason ?? codeName(error.code);
        span.setAttributes({ "rpc.grpc.status_code": error.code, "identity.reason": reason });
        span.setStatus({ code: SpanStatusCode.ERROR, message: codeName(error.code) });
      }
      span.end();
    };
    let result: Promise<R> | R;
    try {
      result = otelContext.with(active, work);
    } catch (err) {
      end(err);
      throw err;
    }
    if (!(result instanceof Promise)) {
      end();
      return result;
    }
    return result.then(
      (response) => {
        end();
        return response;
      },
      (err: unknown) => {
        end(err);
        throw err;
      },
    );
  };
}
