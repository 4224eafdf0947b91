import type { AppRegistry } from "../domain/app-registry.js";
import type { PhoneNumber, RateLimiter, UserStore, WechatApi } from "../domain/ports.js";
import type { AppAccessTokens } from "../wechat-session/app-access-tokens.js";
import type { VerifyToken } from "./verify-token.js";

/**
 * GetPhoneNumber: the user from the access token, the app's shared access_token, and WeChat's
 * getuserphonenumber with the button event's code and the user's openid (so WeChat checks that
 * the code is this user's). With `bind` the number is stored with the user.
 */
export function createGetPhoneNumber(deps: {
  verifyToken: VerifyToken;
  apps: AppRegistry;
  appAccessTokens: AppAccessTokens;
  wechat: Pick<WechatApi, "getUserPhoneNumber">;
  users: UserStore;
  /** Calls per user: WeChat bills every number it hands out. */
  perUser: RateLimiter;
}) {
  return async function getPhoneNumber(input: {
    accessToken: string;
    phoneCode: string;
    bind: boolean;
  }): Promise<PhoneNumber> {
    const claims = deps.verifyToken.verify(input.accessToken);
    await deps.perUser.take(`user:${claims.userId}`);
    const app = deps.apps.resolve(claims.appId);
    const phone = await deps.appAccessTokens.withToken(app, (accessToken) =>
      deps.wechat.getUserPhoneNumber(accessToken, input.phoneCode, claims.openid),
    );
    if (input.bind) await deps.users.bindPhoneNumber(claims.userId, phone.phoneNumber);
    return phone;
  };
}

export type GetPhoneNumber = ReturnType<typeof createGetPhoneNumber>;
