import type { AppRegistry } from "../domain/app-registry.js";
import type { WechatApi } from "../domain/ports.js";
import { sessionKeyExpired } from "../domain/user-data.js";
import type { AppAccessTokens } from "../wechat-session/app-access-tokens.js";
import type { SessionKeyVault } from "../wechat-session/session-key-vault.js";
import type { VerifyToken } from "./verify-token.js";

/**
 * CheckSessionKey: asks WeChat (checksession, with the app's shared access_token) whether the
 * session_key held for the token's user is still the current one. A key WeChat has replaced, or
 * one no longer held, is SESSION_KEY_EXPIRED: the client must call wx.login() again.
 */
export function createCheckSessionKey(deps: {
  verifyToken: VerifyToken;
  apps: AppRegistry;
  sessionKeys: SessionKeyVault;
  appAccessTokens: AppAccessTokens;
  wechat: Pick<WechatApi, "checkSessionKey">;
}) {
  return async function checkSessionKey(accessToken: string): Promise<void> {
    const claims = deps.verifyToken.verify(accessToken);
    const sessionKey = await deps.sessionKeys.current(claims.appId, claims.openid);
    if (sessionKey === null) throw sessionKeyExpired();
    const app = deps.apps.resolve(claims.appId);
    const current = await deps.appAccessTokens.withToken(app, (token) =>
      deps.wechat.checkSessionKey(token, claims.openid, sessionKey),
    );
    if (!current) throw sessionKeyExpired("is no longer the one WeChat holds");
  };
}

export type CheckSessionKey = ReturnType<typeof createCheckSessionKey>;
