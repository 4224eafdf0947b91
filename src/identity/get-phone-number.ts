import type { AppRegistry } from "../domain/app-registry.js";
import { IdentityError } from "../domain/errors.js";
import type { AccountStore, Clock, PhoneNumber, RateLimiter } from "../domain/ports.js";
import type { PhoneNumbers } from "../wechat-session/phone-numbers.js";
import type { VerifyToken } from "./verify-token.js";

/**
 * GetPhoneNumber: the number behind a getPhoneNumber button code, for the user of the access
 * token (WeChat checks that the code is this openid's). With `bind` the number is linked to the
 * user as LinkIdentity links it: a number belongs to one user (ACCOUNT_CONFLICT otherwise).
 */
export function createGetPhoneNumber(deps: {
  verifyToken: VerifyToken;
  apps: AppRegistry;
  phoneNumbers: PhoneNumbers;
  accounts: Pick<AccountStore, "linkIdentity">;
  clock: Clock;
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
    const phone = await deps.phoneNumbers.verify(
      deps.apps.resolve(claims.appId),
      input.phoneCode,
      claims.openid ?? "",
    );
    if (input.bind) {
      const outcome = await deps.accounts.linkIdentity(
        claims.userId,
        { kind: "phone", phoneNumber: phone.phoneNumber },
        {
          at: new Date(deps.clock.now()),
          type: "identity.linked",
          actor: claims.userId,
          subjectUserId: claims.userId,
          ip: "",
          userAgent: "",
          details: { kind: "phone", by: "get_phone_number" },
        },
      );
      if (outcome === "conflict")
        throw new IdentityError("ACCOUNT_CONFLICT", "this phone number belongs to another user");
    }
    return phone;
  };
}

export type GetPhoneNumber = ReturnType<typeof createGetPhoneNumber>;
