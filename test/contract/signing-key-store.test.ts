import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SigningKeyStore, StoredSigningKey } from "../../src/domain/ports.js";
import { createMemorySigningKeyStore } from "../../src/store/memory/signing-key-store.js";
import { createPgSigningKeyStore } from "../../src/store/pg/signing-key-store.js";
import { PG_DATABASES } from "../helpers/backends.js";
import { uniqueName } from "../helpers/scratch-database.js";

/** The SigningKeyStore contract: in memory, on embedded PGlite and on the real PostgreSQL. */
const BACKENDS: ReadonlyArray<{
  name: string;
  open(): Promise<{ keys: SigningKeyStore; close(): Promise<void> }>;
}> = [
  { name: "in memory", open: async () => ({ keys: createMemorySigningKeyStore(), close: async () => {} }) },
  ...PG_DATABASES.map(({ name, open }) => ({
    name,
    async open() {
      const { handle, drop } = await open();
      await handle.migrate();
      return {
        keys: createPgSigningKeyStore(handle.db),
        async close() {
          await handle.close();
          await drop();
        },
      };
    },
  })),
];

for (const backend of BACKENDS) {
  describe(`SigningKeyStore: ${backend.name}`, () => {
    let keys: SigningKeyStore;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ keys, close } = await backend.open());
    });
    afterAll(() => close());

    it("creates exactly one key when instances start together", async () => {
      let generated = 0;
      const now = new Date();
      const generate = (): StoredSigningKey => {
        generated++;
        return {
          kid: uniqueName("kid"),
          alg: "ES256",
          publicJwk: { kty: "EC" },
          sealedPrivateKey: "sealed",
          createdAt: now,
          activatesAt: now,
          retiresAt: null,
        };
      };
      const results = await Promise.all(
        Array.from({ length: 5 }, () => keys.ensureSigningKey(now, generate)),
      );
      expect(generated).toBe(1);
      for (const result of results) expect(result.map((k) => k.kid)).toEqual(results[0]?.map((k) => k.kid));
      expect(await keys.ensureSigningKey(now, generate)).toHaveLength(1);
    });

    it("rotates once: the next key is added, the current ones retire, a second rotation waits", async () => {
      const now = new Date();
      const later = (ms: number) => new Date(now.getTime() + ms);
      const key = (activatesAt: Date): StoredSigningKey => ({
        kid: uniqueName("kid"),
        alg: "ES256",
        publicJwk: { kty: "EC" },
        sealedPrivateKey: "sealed",
        createdAt: now,
        activatesAt,
        retiresAt: null,
      });
      const before = await keys.ensureSigningKey(now, () => key(now));
      // Parallel rotations (two instances on schedule, or the command twice): one wins.
      const results = await Promise.all(
        [1, 2, 3].map(() => keys.rotate(now, key(later(600_000)), later(8_000_000))),
      );
      expect(results.filter((r) => r.rotated)).toHaveLength(1);
      const after = (results.find((r) => r.rotated) as (typeof results)[0]).keys;
      expect(after).toHaveLength(before.length + 1);
      expect(after.at(-1)?.activatesAt).toEqual(later(600_000));
      for (const old of after.slice(0, -1)) expect(old.retiresAt).toEqual(later(8_000_000));
      // Once retired, a key is no longer listed.
      expect(await keys.ensureSigningKey(later(8_000_001), () => key(now))).toEqual([
        { ...(after.at(-1) as StoredSigningKey), retiresAt: null },
      ]);
    });
  });
}
