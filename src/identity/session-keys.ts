import type { KeyValueStore } from "../domain/ports.js";
import type { Sealer } from "../domain/sealing.js";

/**
 * Where WeChat session_keys live: in the key-value store (Redis or in-process), sealed, never in a
 * response or a log. Per (app, openid) the current key and, for a grace period after WeChat
 * replaced it, the previous one; the braces make both a Redis Cluster hash tag. A login's put
 * is one command (a swap) unless the key changed.
 */
export function createSessionKeyVault(deps: {
  kv: KeyValueStore;
  sealer: Sealer;
  ttlMs: number;
  previousKeyGraceMs: number;
}) {
  const currentKey = (appId: string, openid: string) => `sk:{${appId}:${openid}}`;
  const previousKey = (appId: string, openid: string) => `skp:{${appId}:${openid}}`;

  /** Opens a stored key; values of the earlier format held JSON with the key as `current`. */
  function open(sealed: string): string {
    const plain = deps.sealer.open(sealed);
    return plain.startsWith("{") ? (JSON.parse(plain) as { current: string }).current : plain;
  }

  return {
    async put(appId: string, openid: string, sessionKey: string): Promise<void> {
      const replaced = await deps.kv.swap(
        currentKey(appId, openid),
        deps.sealer.seal(sessionKey),
        deps.ttlMs,
      );
      if (replaced === null) return;
      const previous = open(replaced);
      if (previous !== sessionKey) {
        await deps.kv.set(previousKey(appId, openid), deps.sealer.seal(previous), deps.previousKeyGraceMs);
      }
    },
    /** The session_key WeChat holds now, or null once it has expired here. */
    async current(appId: string, openid: string): Promise<string | null> {
      const sealed = await deps.kv.get(currentKey(appId, openid));
      return sealed === null ? null : open(sealed);
    },
    /** The key WeChat replaced at the last wx.login(), kept for a short grace (read only when needed). */
    async previous(appId: string, openid: string): Promise<string | null> {
      const sealed = await deps.kv.get(previousKey(appId, openid));
      return sealed === null ? null : open(sealed);
    },
  };
}

export type SessionKeyVault = ReturnType<typeof createSessionKeyVault>;
