import { AccessTokenRejectedError, IdentityError } from "../domain/errors.js";
import type { AppCredentials, Clock, KeyValueStore, WechatApi } from "../domain/ports.js";
import type { Sealer } from "../domain/sealing.js";
import { storageKeys } from "../domain/storage-keys.js";
import { PEER_POLL_INTERVAL_MS, pause, peerWaitMs } from "./waiting-for-a-peer.js";

interface CachedToken {
  token: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

/**
 * A token is renewed this long before it expires: inside WeChat's last 5 minutes, when it hands
 * out the next token (before them it answers with the same one again).
 */
export const APP_ACCESS_TOKEN_RENEW_AHEAD_MS = 4 * 60_000;

/**
 * The app access_token WeChat's server APIs want (phone numbers, checksession; never Login),
 * shared by every instance through the key-value store (docs/wechat.md): instances that each fetch
 * their own knock each other's tokens out. One instance at a time refreshes, under a lock; the
 * others keep using the cached token, which WeChat keeps valid until it expires, or wait for the
 * refresher when there is none. The token is renewed ahead of its expiry, and a
 * token WeChat rejects (40001, 42001) is force-refreshed once, by one instance, and the call
 * retried.
 */
export function createAppAccessTokens(deps: {
  wechat: WechatApi;
  kv: KeyValueStore;
  sealer: Sealer;
  clock: Clock;
  /** The WeChat client's timeout: an instance waits for another's refresh a little longer. */
  wechatTimeoutMs: number;
  /** Tests move it; production keeps the default. */
  renewAheadMs?: number;
}) {
  const renewAheadMs = deps.renewAheadMs ?? APP_ACCESS_TOKEN_RENEW_AHEAD_MS;
  const waitTimeoutMs = peerWaitMs(deps.wechatTimeoutMs);
  const tokenKey = (app: AppCredentials) => storageKeys.appAccessToken(app.appId);
  const lockKey = (app: AppCredentials) => storageKeys.appAccessTokenLock(app.appId);

  async function cached(app: AppCredentials): Promise<CachedToken | null> {
    const sealed = await deps.kv.get(tokenKey(app));
    return sealed === null ? null : (JSON.parse(deps.sealer.open(sealed)) as CachedToken);
  }

  /** No token yet, the one WeChat rejected, or one inside its renewal window. */
  const needsRefresh = (token: CachedToken | null, rejected: string | undefined): boolean =>
    token === null || token.token === rejected || token.expiresAt - renewAheadMs <= deps.clock.now();

  /**
   * Under the lock, fetches a new token if the stored one still needs it (another instance may
   * have refreshed meanwhile) and returns the token to use; null when another instance holds the
   * lock.
   */
  async function refreshUnderLock(app: AppCredentials, rejected: string | undefined): Promise<string | null> {
    if (!(await deps.kv.setIfAbsent(lockKey(app), "refreshing", waitTimeoutMs))) return null;
    try {
      const latest = await cached(app);
      if (latest !== null && !needsRefresh(latest, rejected)) return latest.token;
      const fetched = await deps.wechat.stableToken(app, rejected !== undefined);
      const token = {
        token: fetched.accessToken,
        expiresAt: deps.clock.now() + fetched.expiresInMs,
      };
      await deps.kv.set(tokenKey(app), deps.sealer.seal(JSON.stringify(token)), fetched.expiresInMs);
      return token.token;
    } finally {
      await deps.kv.delete(lockKey(app)).catch(() => {});
    }
  }

  /** A token that is (or will be) valid, refreshing or waiting for the refresher as needed. */
  async function current(app: AppCredentials, rejected?: string): Promise<string> {
    const deadline = deps.clock.now() + waitTimeoutMs;
    for (;;) {
      const token = await cached(app);
      if (token !== null && !needsRefresh(token, rejected)) return token.token;
      const refreshed = await refreshUnderLock(app, rejected);
      if (refreshed !== null) return refreshed;
      // Another instance is refreshing: a token WeChat still accepts will do, else wait for the new one.
      if (token !== null && token.token !== rejected && token.expiresAt > deps.clock.now())
        return token.token;
      if (deps.clock.now() > deadline) {
        throw new IdentityError("WECHAT_UNAVAILABLE", "WeChat's access_token could not be obtained in time");
      }
      await pause(PEER_POLL_INTERVAL_MS);
    }
  }

  return {
    /**
     * Runs a WeChat call with the app's access_token. If WeChat rejects the token as invalid or
     * expired, it is replaced (once, by one instance) and the call is made once more.
     */
    async withToken<T>(app: AppCredentials, call: (accessToken: string) => Promise<T>): Promise<T> {
      const token = await current(app);
      try {
        return await call(token);
      } catch (err) {
        if (!(err instanceof AccessTokenRejectedError)) throw err;
        return call(await current(app, token));
      }
    },
  };
}

export type AppAccessTokens = ReturnType<typeof createAppAccessTokens>;
