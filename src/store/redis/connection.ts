import { Redis, type RedisOptions } from "ioredis";

/**
 * A Redis client tuned to fail fast: during an outage a command errors within about a second
 * (the service answers UNAVAILABLE) instead of queueing for the default 20 retries.
 */
export function connectRedis(
  url: string,
  onError: (err: Error) => void = () => {},
  options: Pick<RedisOptions, "connectionName" | "autoResubscribe" | "enableAutoPipelining"> = {},
): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    commandTimeout: 2000,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
    ...options,
  });
  // Without a listener ioredis prints every reconnect failure; the caller decides what to log.
  redis.on("error", onError);
  return redis;
}
