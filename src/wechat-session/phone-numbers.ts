import type { AppCredentials, PhoneNumber, WechatApi } from "../domain/ports.js";
import type { AppAccessTokens } from "./app-access-tokens.js";

/**
 * The phone number behind a getPhoneNumber button code, as WeChat verified it: the app's shared
 * access_token and getuserphonenumber with the user's openid (so WeChat checks the code is theirs).
 * One way for GetPhoneNumber, LoginWithPhone and LinkIdentity.
 */
export function createPhoneNumbers(deps: {
  appAccessTokens: AppAccessTokens;
  wechat: Pick<WechatApi, "getUserPhoneNumber">;
}) {
  return {
    verify(app: AppCredentials, phoneCode: string, openid: string): Promise<PhoneNumber> {
      return deps.appAccessTokens.withToken(app, (accessToken) =>
        deps.wechat.getUserPhoneNumber(accessToken, phoneCode, openid),
      );
    },
  };
}

export type PhoneNumbers = ReturnType<typeof createPhoneNumbers>;
