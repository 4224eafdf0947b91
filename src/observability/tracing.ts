import {
  type Attributes,
  type Context,
  context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  SimpleSpanProcessor,
  type SpanExporter,
  TracerProvider,
} from "@opentelemetry/sdk-trace";

/**
 * OpenTelemetry traces: a span per RPC (its parent taken from the call's `traceparent`), with
 * child spans for WeChat, Postgres and Redis calls. Off by default; OTEL_TRACES_EXPORTER=otlp
 * sends them to OTEL_EXPORTER_OTLP_ENDPOINT (OTLP over HTTP). Off, `tracer` is undefined and no
 * call pays for a span. The provider is this service's own, not the global one, so two services
 * in one process (tests) keep their spans apart.
 */
export interface TracingSettings {
  exporter: "none" | "otlp";
  /** The collector's base URL; spans go to its /v1/traces. */
  endpoint: string;
  serviceName: string;
}

export interface Tracing {
  readonly tracer: Tracer | undefined;
  /** Sends what is buffered, then stops. */
  shutdown(): Promise<void>;
}

/** The text headers a trace context travels in (W3C Trace Context), for a call handed between threads. */
export const TRACE_HEADERS = ["traceparent", "tracestate"] as const;

const propagator = new W3CTraceContextPropagator();
const headerGetter: TextMapGetter<Headers> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
};

/** The trace context a call's headers carry (none: a new trace). */
export const extractTraceContext = (headers: Headers): Context =>
  propagator.extract(ROOT_CONTEXT, headers, headerGetter);

let contextManagerSet = false;

export function createTracing(settings: TracingSettings, exporter?: SpanExporter): Tracing {
  if (settings.exporter === "none" && !exporter) return { tracer: undefined, shutdown: async () => {} };
  // Child spans find their parent through the async context: one manager per isolate.
  if (!contextManagerSet) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    contextManagerSet = true;
  }
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": settings.serviceName }),
    spanProcessors: [
      exporter
        ? new SimpleSpanProcessor({ exporter })
        : new BatchSpanProcessor({
            exporter: new OTLPTraceExporter({ url: `${settings.endpoint.replace(/\/+$/, "")}/v1/traces` }),
          }),
    ],
  });
  return {
    tracer: provider.getTracer("wechat-identity"),
    shutdown: () => provider.shutdown(),
  };
}

/**
 * Runs `work` in a child span of the active one (a dependency call: WeChat, Postgres, Redis),
 * ended when it settles, its error recorded by name only (messages can carry data).
 */
export function inSpan<T>(
  tracer: Tracer | undefined,
  name: string,
  attributes: Attributes,
  work: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (!tracer) return work(undefined);
  return tracer.startActiveSpan(name, { kind: SpanKind.CLIENT, attributes }, async (span) => {
    try {
      return await work(span);
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorName(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Starts an RPC's span under the trace context its headers carry; the caller ends it. */
export function startCallSpan(
  tracer: Tracer,
  headers: Headers,
  name: string,
  attributes: Attributes,
): { span: Span; context: Context } {
  const parent = extractTraceContext(headers);
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

const errorName = (err: unknown) =>
  err instanceof Error ? ((err as { reason?: string }).reason ?? err.name) : typeof err;
