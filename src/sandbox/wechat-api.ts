import { WECHAT_CODE_LIFETIME_MS } from "../domain/ports.js";
import { sessionKeySignature } from "../domain/user-data.js";
import { WECHAT_ERRCODES } from "../wechat/errcodes.js";
import { randomId, type SandboxWorld, userKey } from "./world.js";

/**
 * WeChat's server API as the service calls it, answered from the sandbox's world: codes are
 * single-use and expire after five minutes, credentials are checked, and access_tokens behave
 * like stable_token's. Each function returns WeChat's answer (HTTP status and JSON body).
 */

export interface WechatAnswer {
  status: number;
  body: unknown;
}

const ACCESS_TOKEN_LIFETIME_MS = 7200 * 1000;
/** WeChat issues the next access_token this long before the current one expires. */
const ACCESS_TOKEN_RENEWAL_MS = 5 * 60 * 1000;

const errcode = (code: number, errmsg: string): WechatAnswer => ({
  status: 200,
  body: { errcode: code, errmsg },
});

export function createWechatApi(world: SandboxWorld) {
  const { clock, apps, codes, phoneCodes, sessionKeys, accessTokens } = world;

  function accessTokenValid(appId: string, token: string): boolean {
    const now = clock.now();
    const current = accessTokens.get(appId);
    return [current, current?.previous].some(
      (t) => t !== undefined && t.token === token && t.expiresAt > now,
    );
  }

  /** The app an access_token belongs to, or WeChat's 40001 answer for a token it does not accept. */
  function appOfAccessToken(token: string): { appId: string } | { rejected: WechatAnswer } {
    const appId = [...accessTokens.keys()].find((id) => accessTokenValid(id, token));
    if (appId) return { appId };
    return {
      rejected: errcode(
        WECHAT_ERRCODES.ACCESS_TOKEN_INVALID,
        "invalid credential, access_token is invalid or not latest",
      ),
    };
  }

  /** The app's secret is checked the way WeChat checks it; undefined when it holds. */
  function refusedCredentials(appId: string, secret: unknown): WechatAnswer | undefined {
    const expected = apps.get(appId);
    if (expected === undefined) return errcode(WECHAT_ERRCODES.INVALID_APPID, "invalid appid");
    if (secret !== expected) return errcode(WECHAT_ERRCODES.INVALID_SECRET, "invalid appsecret");
    return undefined;
  }

  return {
    accessTokenValid,

    /** GET sns/jscode2session: a wx.login code for openid, unionid and the session_key, once. */
    jscode2session(query: URLSearchParams): WechatAnswer {
      const appId = query.get("appid") ?? "";
      const refused = refusedCredentials(appId, query.get("secret"));
      if (refused) return refused;
      const issued = codes.get(query.get("js_code") ?? "");
      if (!issued || issued.appId !== appId || clock.now() - issued.issuedAt > WECHAT_CODE_LIFETIME_MS) {
        return errcode(WECHAT_ERRCODES.INVALID_CODE, "invalid code");
      }
      if (issued.used) return errcode(WECHAT_ERRCODES.CODE_USED, "code been used");
      issued.used = true;
      const body: Record<string, string> = {
        openid: issued.openid,
        session_key: sessionKeys.get(userKey(appId, issued.openid)) ?? "",
      };
      if (issued.unionid) body.unionid = issued.unionid;
      return { status: 200, body };
    },

    /**
     * POST cgi-bin/stable_token: one access_token per app, valid 7200 s. Without force_refresh the
     * current token comes back (with its remaining lifetime) until its last 5 minutes, when a new
     * one is issued and the old stays valid until it expires. With force_refresh a new token
     * replaces the old ones, which stop working at once: how services knock each other out.
     */
    stableToken(body: Record<string, unknown>): WechatAnswer & { forced: boolean } {
      const appId = typeof body.appid === "string" ? body.appid : "";
      const refused = refusedCredentials(appId, body.secret);
      if (refused) return { ...refused, forced: false };
      if (body.grant_type !== "client_credential")
        return { ...errcode(40002, "invalid grant_type"), forced: false };
      const now = clock.now();
      let current = accessTokens.get(appId);
      const forced = body.force_refresh === true;
      if (forced || !current || current.expiresAt - ACCESS_TOKEN_RENEWAL_MS <= now) {
        const previous =
          !forced && current && current.expiresAt > now ? { ...current, previous: undefined } : undefined;
        current = { token: `AT_${randomId(96)}`, expiresAt: now + ACCESS_TOKEN_LIFETIME_MS, previous };
        accessTokens.set(appId, current);
      }
      return {
        status: 200,
        body: { access_token: current.token, expires_in: Math.ceil((current.expiresAt - now) / 1000) },
        forced,
      };
    },

    /** POST wxa/business/getuserphonenumber: the token names the app; the code is single-use, 5 minutes. */
    userPhoneNumber(token: string, body: Record<string, unknown>): WechatAnswer {
      const caller = appOfAccessToken(token);
      if ("rejected" in caller) return caller.rejected;
      const { appId } = caller;
      const issued = phoneCodes.get(typeof body.code === "string" ? body.code : "");
      const now = clock.now();
      const openidMismatch =
        typeof body.openid === "string" && body.openid !== "" && body.openid !== issued?.openid;
      if (
        !issued ||
        issued.used ||
        issued.appId !== appId ||
        openidMismatch ||
        now - issued.issuedAt > WECHAT_CODE_LIFETIME_MS
      ) {
        return errcode(WECHAT_ERRCODES.INVALID_CODE, "invalid code");
      }
      issued.used = true;
      return {
        status: 200,
        body: {
          errcode: 0,
          errmsg: "ok",
          phone_info: {
            phoneNumber: issued.phoneNumber,
            purePhoneNumber: issued.phoneNumber.replace(/^\+86 ?/, ""),
            countryCode: "86",
            watermark: { timestamp: Math.floor(now / 1000), appid: appId },
          },
        },
      };
    },

    /** GET wxa/checksession: is the signature hmac_sha256(the user's current session_key, "")? */
    checkSession(query: URLSearchParams): WechatAnswer {
      const caller = appOfAccessToken(query.get("access_token") ?? "");
      if ("rejected" in caller) return caller.rejected;
      const sessionKey = sessionKeys.get(userKey(caller.appId, query.get("openid") ?? ""));
      const valid =
        query.get("sig_method") === "hmac_sha256" &&
        sessionKey !== undefined &&
        query.get("signature") === sessionKeySignature(sessionKey);
      return valid
        ? { status: 200, body: { errcode: 0, errmsg: "ok" } }
        : errcode(WECHAT_ERRCODES.INVALID_SIGNATURE, "invalid signature");
    },
  };
}
