import { type Clock, type KeyValueStore, systemClock } from "../../domain/ports.js";

interface Entry {
  value: string;
  expiresAt: number;
}

/**
 * KeyValueStore in this process's memory: the embedded default. Right for one instance; several
 * instances need Redis to share code exchanges and session keys.
 */
export function createMemoryKeyValueStore(clock: Clock = systemClock): KeyValueStore {
  const entries = new Map<string, Entry>();

  function live(key: string): Entry | undefined {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= clock.now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  }

  // Expired entries nobody reads again are swept now and then, so memory stays bounded.
  const sweeper = setInterval(() => {
    const now = clock.now();
    for (const [key, entry] of entries) if (entry.expiresAt <= now) entries.delete(key);
  }, 30_000);
  sweeper.unref();

  return {
    async get(key) {
      return live(key)?.value ?? null;
    },
    async set(key, value, ttlMs) {
      entries.set(key, { value, expiresAt: clock.now() + ttlMs });
    },
    async setIfAbsent(key, value, ttlMs) {
      if (live(key)) return false;
      entries.set(key, { value, expiresAt: clock.now() + ttlMs });
      return true;
    },
    async swap(key, value, ttlMs) {
      const replaced = live(key)?.value ?? null;
      entries.set(key, { value, expiresAt: clock.now() + ttlMs });
      return replaced;
    },
    async delete(key) {
      entries.delete(key);
    },
  };
}
