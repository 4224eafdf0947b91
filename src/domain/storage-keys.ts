/**
 * Every key the service keeps in the key-value store and every broadcast topic, in one place, so
 * that what is shared between instances (and between versions during a rolling deploy) is named
 * once. Keys are given without the deployment's prefix (the store adds it). The braces are Redis
 * Cluster hash tags: keys of one user or one app land on one slot.
 */
export const storageKeys = {
  /** A wx.login code's exchange (claimed, then its sealed result); only a hash of the code. */
  codeExchange: (appId: string, codeHash: string) => `code:${appId}:${codeHash}`,
  /** The user's current session_key, sealed. */
  sessionKey: (appId: string, openid: string) => `sk:{${appId}:${openid}}`,
  /** The session_key WeChat replaced at the user's last wx.login(), sealed, for a short grace. */
  previousSessionKey: (appId: string, openid: string) => `skp:{${appId}:${openid}}`,
  /** The app's access_token for WeChat's server APIs, sealed, shared by every instance. */
  appAccessToken: (appId: string) => `at:{${appId}}`,
  /** Held by the one instance refreshing the app's access_token. */
  appAccessTokenLock: (appId: string) => `at-lock:{${appId}}`,
} as const;

/** Broadcast topics (Redis pub/sub channels, after the prefix). */
export const topics = {
  /** [[sessionId, forgetAfterMs], ...]: sessions just ended. */
  revocations: "revocations",
  /** "rotated": reload the signing keys now. */
  signingKeys: "signing-keys",
} as const;
