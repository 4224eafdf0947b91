import { gt, isNull, or, sql } from "drizzle-orm";
import type { SigningKeyStore, StoredSigningKey } from "../../domain/ports.js";
import type { Database } from "./database.js";
import { signingKeys } from "./schema.js";

/** Serializes key creation and rotation across instances (and the rotation command). */
const SIGNING_KEYS_LOCK_ID = 7_263_002;

type Transaction = Parameters<Parameters<Database["transaction"]>[0]>[0];

export function createPgSigningKeyStore(db: Database): SigningKeyStore {
  const live = (tx: Transaction, now: Date): Promise<StoredSigningKey[]> =>
    tx
      .select()
      .from(signingKeys)
      .where(or(isNull(signingKeys.retiresAt), gt(signingKeys.retiresAt, now)))
      .orderBy(signingKeys.activatesAt) as Promise<StoredSigningKey[]>;

  /** Runs `work` holding the signing-keys lock, so instances starting together create one key. */
  const locked = <T>(work: (tx: Transaction) => Promise<T>) =>
    db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${SIGNING_KEYS_LOCK_ID})`);
      return work(tx);
    });

  return {
    ensureSigningKey: (now, generate) =>
      locked(async (tx) => {
        const keys = await live(tx, now);
        if (keys.some((k) => k.activatesAt <= now)) return keys;
        await tx.insert(signingKeys).values(generate());
        return live(tx, now);
      }),

    rotate: (now, next, retireCurrentAt) =>
      locked(async (tx) => {
        const keys = await live(tx, now);
        if (keys.some((k) => k.activatesAt > now)) return { rotated: false, keys };
        await tx.update(signingKeys).set({ retiresAt: retireCurrentAt }).where(isNull(signingKeys.retiresAt));
        await tx.insert(signingKeys).values(next);
        return { rotated: true, keys: await live(tx, now) };
      }),
  };
}
