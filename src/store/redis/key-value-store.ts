import type { KeyValueStore } from "../../domain/ports.js";
import type { RedisClient } from "./connection.js";

/** KeyValueStore on Redis. Every key carries the deployment's prefix, so one Redis can be shared. */
export function createRedisKeyValueStore(redis: RedisClient, prefix: string): KeyValueStore {
  return {
    get: (key) => redis.get(prefix + key),
    async set(key, value, ttlMs) {
      await redis.set(prefix + key, value, "PX", Math.max(1, Math.ceil(ttlMs)));
    },
    async setIfAbsent(key, value, ttlMs) {
      const reply = await redis.set(prefix + key, value, "PX", Math.max(1, Math.ceil(ttlMs)), "NX");
      return reply === "OK";
    },
    swap: (key, value, ttlMs) => redis.set(prefix + key, value, "PX", Math.max(1, Math.ceil(ttlMs)), "GET"),
    async delete(key) {
      await redis.del(prefix + key);
    },
  };
}
