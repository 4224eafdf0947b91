import type { Tracer } from "@opentelemetry/api";
import type { Config } from "../config.js";
import type { Broadcast, Clock, KeyValueStore, RateLimiter } from "../domain/ports.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { type Dependency, dependency, guardPort } from "../store/guard-port.js";
import { createMemoryBroadcast } from "../store/memory/broadcast.js";
import { createMemoryKeyValueStore } from "../store/memory/key-value-store.js";
import { createRateLimiter, type RateLimit } from "../store/rate-limiter.js";
import { createRedisBroadcast } from "../store/redis/broadcast.js";
import { connectRedis } from "../store/redis/connection.js";
import { createRedisKeyValueStore } from "../store/redis/key-value-store.js";

/** How often a Redis outage is logged: one line per interval shows it without flooding the log. */
const REDIS_ERROR_LOG_INTERVAL_MS = 10_000;

export interface SharedStorage {
  kind: "redis" | "in-process";
  kv: KeyValueStore;
  broadcast: Broadcast;
  /** Redis as every port on it sees it (its breaker); none in-process. */
  dependency?: Dependency;
  /** A rate limiter whose counters live where the rest of the shared state does. */
  rateLimiter(limit: RateLimit): RateLimiter;
  close(): Promise<void>;
}

/**
 * What instances of a deployment share besides Postgres: Redis (REDIS_URL), or this process's
 * memory in the embedded default, where this process is the only instance.
 */
export async function openSharedStorage(
  config: Pick<Config, "redis" | "redisKeyPrefix" | "storageMaxInFlight">,
  deps: { clock: Clock; log: Logger; metrics?: Metrics; tracer?: Tracer },
): Promise<SharedStorage> {
  const rejected = (rule: string) => deps.metrics?.rateLimited.inc({ rule });
  if (!config.redis) {
    const broadcast = createMemoryBroadcast();
    return {
      kind: "in-process",
      kv: createMemoryKeyValueStore(deps.clock),
      broadcast,
      rateLimiter: (limit) => createRateLimiter(limit, { prefix: config.redisKeyPrefix }, rejected),
      close: () => broadcast.close(),
    };
  }
  let lastLogged = 0;
  const onError = (err: Error) => {
    if (deps.clock.now() - lastLogged < REDIS_ERROR_LOG_INTERVAL_MS) return;
    lastLogged = deps.clock.now();
    deps.log.warn("redis connection error", { error: (err as NodeJS.ErrnoException).code ?? err.name });
  };
  const redis = connectRedis(config.redis, onError);
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  const broadcast = createRedisBroadcast(redis, {
    topology: config.redis,
    prefix: config.redisKeyPrefix,
    onError,
  });
  const guard = dependency("redis", {
    maxInFlight: config.storageMaxInFlight,
    log: deps.log,
    observe: deps.metrics?.dependencyObserver("redis"),
    tracer: deps.tracer,
  });
  deps.metrics?.watchDependency(guard);
  return {
    kind: "redis",
    dependency: guard,
    kv: guardPort(createRedisKeyValueStore(redis, config.redisKeyPrefix), guard),
    broadcast,
    rateLimiter: (limit) => createRateLimiter(limit, { redis, prefix: config.redisKeyPrefix }, rejected),
    async close() {
      guard.close();
      await broadcast.close();
      await redis.quit().catch(() => {});
    },
  };
}
