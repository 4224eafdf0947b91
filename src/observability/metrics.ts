import {
  AggregatorRegistry,
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from "prom-client";

/**
 * The service's Prometheus metrics (prom-client), one registry per running service so that two
 * services in one process (tests) never share counters. Names carry their unit; label values are
 * bounded: method names, protocols, status codes, error reasons, endpoints, errcodes, rule names
 * and configured caller names, never a user, a token or an address.
 *
 * The gRPC thread keeps a registry of its own for what it serves (VerifyToken, its cache); the
 * main thread adds it to its own at each scrape (scrapeText).
 */

/** Seconds: from 0.5 ms (a warm VerifyToken) to 10 s (a call at its deadline). */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What every thread that serves calls records: the RPCs and the VerifyToken cache it holds. */
export function createCallMetrics(registry: Registry) {
  return {
    rpcDuration: new Histogram({
      name: "identity_rpc_duration_seconds",
      help: "Time to answer an RPC, by method and protocol (grpc, connect, grpc-web), errors included.",
      labelNames: ["method", "protocol"] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    rpcErrors: new Counter({
      name: "identity_rpc_errors_total",
      help: "RPCs answered with an error, by method, protocol, status code and reason.",
      labelNames: ["method", "protocol", "code", "reason"] as const,
      registers: [registry],
    }),
    callerAuthFailures: new Counter({
      name: "identity_caller_auth_failures_total",
      help: "Calls refused for their caller key or certificate, by port and the caller named (unknown: none of CALLERS).",
      labelNames: ["port", "caller"] as const,
      registers: [registry],
    }),
  };
}

export type CallMetrics = ReturnType<typeof createCallMetrics>;

/** A VerifyToken cache's figures, read at each scrape. */
export interface CacheStats {
  size: number;
  bytes: number;
  hits: number;
  misses: number;
}

/** Gauges and counters read from a VerifyToken cache when scraped (nothing on the hot path). */
export function registerVerifyCache(registry: Registry, thread: "main" | "grpc", stats: () => CacheStats) {
  const labels = { thread };
  new Gauge({
    name: "identity_verify_cache_entries",
    help: "Access tokens whose claims the VerifyToken cache holds, by thread.",
    labelNames: ["thread"] as const,
    registers: [registry],
    collect() {
      this.set(labels, stats().size);
    },
  });
  new Gauge({
    name: "identity_verify_cache_bytes",
    help: "The VerifyToken cache's estimate of its heap bytes, by thread.",
    labelNames: ["thread"] as const,
    registers: [registry],
    collect() {
      this.set(labels, stats().bytes);
    },
  });
  // Counters that only grow, read from the cache's own tallies.
  for (const [name, help, read] of [
    ["identity_verify_cache_hits_total", "VerifyToken calls answered from the cache.", () => stats().hits],
    ["identity_verify_cache_misses_total", "VerifyToken calls that verified a token.", () => stats().misses],
  ] as const) {
    new Counter({
      name,
      help,
      labelNames: ["thread"] as const,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(labels, read());
      },
    });
  }
}

/** What a dependency (Postgres, Redis) shows of itself. */
interface DependencyState {
  readonly backend: string;
  readonly inFlight: number;
  readonly unreachable: boolean;
}

/** The main thread's metrics: the calls it serves, its dependencies, WeChat, limits, revocations. */
export function createMetrics(options: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const dependencies: DependencyState[] = [];
  new Gauge({
    name: "identity_dependency_calls_in_flight",
    help: "Calls waiting on a dependency now (in its pool or its queue), capped by STORAGE_MAX_IN_FLIGHT.",
    labelNames: ["dependency"] as const,
    registers: [registry],
    collect() {
      for (const d of dependencies) this.set({ dependency: d.backend }, d.inFlight);
    },
  });
  new Gauge({
    name: "identity_dependency_up",
    help: "1 while a dependency answers, 0 while its breaker is open (calls refused at once).",
    labelNames: ["dependency"] as const,
    registers: [registry],
    collect() {
      for (const d of dependencies) this.set({ dependency: d.backend }, d.unreachable ? 0 : 1);
    },
  });
  const dependencyDuration = new Histogram({
    name: "identity_dependency_call_duration_seconds",
    help: "Time of a call to a dependency (postgres, redis) through its port, refusals included.",
    labelNames: ["dependency"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const dependencyErrors = new Counter({
    name: "identity_dependency_errors_total",
    help: "Failed dependency calls, by dependency and kind (unavailable, busy, conflict, other).",
    labelNames: ["dependency", "kind"] as const,
    registers: [registry],
  });
  return {
    registry,
    /** Reports a dependency's in-flight calls and breaker state at each scrape. */
    watchDependency: (dependency: DependencyState) => void dependencies.push(dependency),
    /** The observer for dependency(): latency and failures. */
    dependencyObserver(backend: string) {
      const timer = dependencyDuration.labels({ dependency: backend });
      return (seconds: number, failure?: string) => {
        timer.observe(seconds);
        if (failure) dependencyErrors.inc({ dependency: backend, kind: failure });
      };
    },
    ...createCallMetrics(registry),
    wechatRequests: new Counter({
      name: "identity_wechat_requests_total",
      help: "Calls to WeChat's API by endpoint and errcode (0: success; transport failures: timeout, http_<status>, network).",
      labelNames: ["endpoint", "errcode"] as const,
      registers: [registry],
    }),
    wechatDuration: new Histogram({
      name: "identity_wechat_request_duration_seconds",
      help: "Time of a call to WeChat's API, by endpoint.",
      labelNames: ["endpoint"] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: "identity_rate_limit_rejections_total",
      help: "Calls refused RATE_LIMITED, by rule.",
      labelNames: ["rule"] as const,
      registers: [registry],
    }),
    revocationLag: new Histogram({
      name: "identity_revocation_propagation_seconds",
      help: "From a session's revocation on one instance to this instance hearing of it by broadcast.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** A gauge read from a running part when scraped. */
export function registerGauge(registry: Registry, name: string, help: string, read: () => number) {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** WatchRevocations subscriptions of one stream (each port's; the scrape adds them up). */
export function registerRevocationSubscribers(registry: Registry, read: () => number) {
  registerGauge(
    registry,
    "identity_revocation_subscribers",
    "WatchRevocations subscriptions open now.",
    read,
  );
}

/** The text a scrape gets: this thread's metrics and the other threads' (their getMetricsAsJSON). */
export async function scrapeText(
  registry: Registry,
  others: MetricObjectWithValues<MetricValue<string>>[][],
) {
  if (others.length === 0) return registry.metrics();
  const merged = AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), ...others]);
  return merged.metrics();
}

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
