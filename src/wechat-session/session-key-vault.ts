import type { KeyValueStore } from "../domain/ports.js";
import type { Sealer } from "../domain/sealing.js";
import { storageKeys } from "../domain/storage-keys.js";

/**
 * How long the key WeChat replaced at a wx.login() still decrypts: data the device encrypted just
 * before the login reaches DecryptUserData a moment later.
 */
export const PREVIOUS_SESSION_KEY_GRACE_MS = 10 * 60_000;

/**
 * Where WeChat session_keys live: in the key-value store (Redis or in-process), sealed, never in a
 * response or a log. Per (app, openid) the current key and, for a grace period after WeChat
 * replaced it, the previous one. A login's put is one command (a swap) unless the key changed.
 */
export function createSessionKeyVault(deps: {
  kv: KeyValueStore;
  sealer: Sealer;
  /** As long as the session it belongs to may be refreshed. */
  ttlMs: number;
}) {
  const currentKey = storageKeys.sessionKey;
  const previousKey = storageKeys.previousSessionKey;
  const open = (sealed: string): string => deps.sealer.open(sealed);

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
        await deps.kv.set(
          previousKey(appId, openid),
          deps.sealer.seal(previous),
          PREVIOUS_SESSION_KEY_GRACE_MS,
        );
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
