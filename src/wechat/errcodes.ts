import { AccessTokenRejectedError, IdentityError } from "../domain/errors.js";

/**
 * WeChat errcodes the service distinguishes (docs/wechat.md). Anything else is treated as WeChat being
 * unavailable, with the errcode kept in the error metadata for the logs.
 */
export const WECHAT_ERRCODES = {
  SYSTEM_BUSY: -1,
  INVALID_APPID: 40013,
  INVALID_CODE: 40029,
  INVALID_SECRET: 40125,
  CODE_USED: 40163,
  HIGH_RISK_USER: 40226,
  RATE_LIMITED: 45011,
  ACCESS_TOKEN_INVALID: 40001,
  ACCESS_TOKEN_EXPIRED: 42001,
  FORCED_REFRESH_LIMIT: 45009,
  INVALID_SIGNATURE: 87009,
} as const;

/**
 * The errcodes every WeChat API shares (app credentials, rate limits); anything else means
 * WeChat is unavailable. API-specific errcodes are mapped by their callers first.
 */
export function wechatError(errcode: number): IdentityError {
  const metadata = { wechat_errcode: String(errcode) };
  switch (errcode) {
    case WECHAT_ERRCODES.INVALID_APPID:
    case WECHAT_ERRCODES.INVALID_SECRET:
      return new IdentityError(
        "WECHAT_APP_REJECTED",
        "WeChat rejected the app credentials: check the service's app configuration",
        metadata,
      );
    case WECHAT_ERRCODES.RATE_LIMITED:
    case WECHAT_ERRCODES.FORCED_REFRESH_LIMIT:
      return new IdentityError("WECHAT_RATE_LIMITED", "WeChat rate limit reached, retry later", metadata);
    case WECHAT_ERRCODES.ACCESS_TOKEN_INVALID:
    case WECHAT_ERRCODES.ACCESS_TOKEN_EXPIRED:
      return new AccessTokenRejectedError(`WeChat answered errcode ${errcode}`, metadata);
    default:
      return new IdentityError("WECHAT_UNAVAILABLE", `WeChat answered errcode ${errcode}`, metadata);
  }
}

/** Turns a non-zero errcode from code2Session into the domain error the caller should see. */
export function code2SessionError(errcode: number): IdentityError {
  const metadata = { wechat_errcode: String(errcode) };
  switch (errcode) {
    case WECHAT_ERRCODES.INVALID_CODE:
      return new IdentityError(
        "INVALID_CODE",
        "the login code is invalid or expired: call wx.login again",
        metadata,
      );
    case WECHAT_ERRCODES.CODE_USED:
      return new IdentityError("CODE_USED", "the login code was already used: call wx.login again", metadata);
    case WECHAT_ERRCODES.RATE_LIMITED:
      return new IdentityError(
        "WECHAT_RATE_LIMITED",
        "WeChat rate limit reached for this user, retry later",
        metadata,
      );
    case WECHAT_ERRCODES.HIGH_RISK_USER:
      return new IdentityError("HIGH_RISK_USER", "WeChat blocked this login as high risk", metadata);
    default:
      return wechatError(errcode);
  }
}
