import type { SigningKeyStore, StoredSigningKey } from "../../domain/ports.js";

/**
 * SigningKeyStore in memory, with the Postgres store's semantics (one contract suite runs both):
 * for the use cases' fast tests. Keys live as long as the process.
 */
export function createMemorySigningKeyStore(): SigningKeyStore {
  const keys: StoredSigningKey[] = [];
  const live = (now: Date) =>
    keys
      .filter((k) => k.retiresAt === null || k.retiresAt > now)
      .sort((a, b) => a.activatesAt.getTime() - b.activatesAt.getTime())
      .map((k) => ({ ...k }));

  return {
    async ensureSigningKey(now, generate) {
      if (!live(now).some((k) => k.activatesAt <= now)) keys.push(generate());
      return live(now);
    },
    async rotate(now, next, retireCurrentAt) {
      if (live(now).some((k) => k.activatesAt > now)) return { rotated: false, keys: live(now) };
      for (const key of keys) if (key.retiresAt === null) key.retiresAt = retireCurrentAt;
      keys.push({ ...next });
      return { rotated: true, keys: live(now) };
    },
  };
}
