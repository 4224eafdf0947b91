import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { IdentityError } from "../domain/errors.js";
import type { RateLimiter } from "../domain/ports.js";
import type { RedisClient } from "./redis/connection.js";

/** At most `points` events per key within `durationMs`. */
export interface RateLimit {
  /** Part of every key, so that limits do not share counters. */
  name: string;
  points: number;
  durationMs: number;
}

const rateLimited = (limit: RateLimit, res: RateLimiterRes) =>
  new IdentityError(
    "RATE_LIMITED",
    `too many requests (${limit.name}): retry in ${Math.ceil(res.msBeforeNext / 1000)} s`,
    { limit: limit.name },
    { retryAfterMs: Math.max(1, Math.ceil(res.msBeforeNext)) },
  );

/**
 * A RateLimiter on rate-limiter-flexible: on Redis when given one (every instance shares the
 * counters; while Redis cannot answer, this instance counts in its memory instead, so an outage
 * neither opens the gates nor refuses everyone), else in this process's memory.
 */
export function createRateLimiter(
  limit: RateLimit,
  store: { redis?: RedisClient; prefix: string },
  /** Hears of every refusal, by the limit's name. */
  rejected: (rule: string) => void = () => {},
): RateLimiter {
  const options = {
    keyPrefix: `${store.prefix}rl:${limit.name}`,
    points: limit.points,
    duration: Math.max(1, Math.round(limit.durationMs / 1000)),
  };
  const limiter = store.redis
    ? new RateLimiterRedis({
        ...options,
        storeClient: store.redis,
        insuranceLimiter: new RateLimiterMemory(options),
      })
    : new RateLimiterMemory(options);

  return {
    async check(key) {
      const res = await limiter.get(key);
      if (res && res.consumedPoints >= limit.points) {
        rejected(limit.name);
        throw rateLimited(limit, res);
      }
    },
    async count(key) {
      await limiter.penalty(key, 1);
    },
    async take(key) {
      try {
        await limiter.consume(key, 1);
      } catch (res) {
        if (res instanceof RateLimiterRes) {
          rejected(limit.name);
          throw rateLimited(limit, res);
        }
        throw res;
      }
    },
  };
}
