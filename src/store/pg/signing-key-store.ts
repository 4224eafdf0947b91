import { gt, isNull, or, sql } from "drizzle-orm";
import type { SigningKeyStore, StoredSigningKey } from "../../domain/ports.js";
import type { Database } from "./database.js";
import { signingKeys } from "./schema.js";

const KEY_CREATION_LOCK_ID = 7_263_002;

export function createPgSigningKeyStore(db: Database): SigningKeyStore {
  return {
    async ensureSigningKey(now, generate) {
      return db.transaction(async (tx) => {
        // Serializes instances that start together, so exactly one of them creates the first key.
        await tx.execute(sql`select pg_advisory_xact_lock(${KEY_CREATION_LOCK_ID})`);
        const live = (): Promise<StoredSigningKey[]> =>
          tx
            .select()
            .from(signingKeys)
            .where(or(isNull(signingKeys.retiresAt), gt(signingKeys.retiresAt, now)))
            .orderBy(signingKeys.activatesAt) as Promise<StoredSigningKey[]>;
        const keys = await live();
        if (keys.some((k) => k.activatesAt <= now)) return keys;
        await tx.insert(signingKeys).values(generate());
        return live();
      });
    },
  };
}
