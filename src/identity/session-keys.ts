import type { KeyValueStore } from "../domain/ports.js";
import type { Sealer } from "../domain/sealing.js";

export interface HeldSessionKeys {
  current: string;
  /** The key WeChat used before its last rotation, kept briefly (data encrypted just before). */
  previous: string | null;
}

interface StoredValue {
  current: string;
  previous: string | null;
  previousUntil: number;
}

/**
 * Where WeChat session_keys live: in the key-value store (Redis or in-process), sealed, never in a
 * response or a log. One entry per (app, openid); the braces make it a Redis Cluster hash tag.
 */
export function createSessionKeyVault(deps: {
  kv: KeyValueStore;
  sealer: Sealer;
  now: () => number;
  ttlMs: number;
  previousKeyGraceMs: number;
}) {
  const keyOf = (appId: string, openid: string) => `sk:{${appId}:${openid}}`;

  async function read(appId: string, openid: string): Promise<StoredValue | null> {
    const raw = await deps.kv.get(keyOf(appId, openid));
    return raw === null ? null : (JSON.parse(deps.sealer.open(raw)) as StoredValue);
  }

  return {
    async put(appId: string, openid: string, sessionKey: string): Promise<void> {
      const existing = await read(appId, openid);
      const now = deps.now();
      let value: StoredValue;
      if (!existing || existing.current === sessionKey) {
        value = existing ?? { current: sessionKey, previous: null, previousUntil: 0 };
      } else {
        value = {
          current: sessionKey,
          previous: existing.current,
          previousUntil: now + deps.previousKeyGraceMs,
        };
      }
      await deps.kv.set(keyOf(appId, openid), deps.sealer.seal(JSON.stringify(value)), deps.ttlMs);
    },
    async get(appId: string, openid: string): Promise<HeldSessionKeys | null> {
      const value = await read(appId, openid);
      if (!value) return null;
      return { current: value.current, previous: value.previousUntil > deps.now() ? value.previous : null };
    },
  };
}

export type SessionKeyVault = ReturnType<typeof createSessionKeyVault>;
