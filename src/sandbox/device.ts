import { createCipheriv, randomBytes } from "node:crypto";
import { WECHAT_CODE_LIFETIME_MS } from "../domain/ports.js";
import { randomId, type SandboxWorld, userKey } from "./world.js";

export interface IssueCodeInput {
  appId?: string;
  openid?: string;
  unionid?: string;
  /** Give the user a new session_key, as WeChat sometimes does on wx.login(). */
  rotateSessionKey?: boolean;
}

/** What WeChat hands a device running the mini-program: codes and encrypted user data. */
export function createDevices(world: SandboxWorld) {
  const { clock, codes, phoneCodes, sessionKeys } = world;

  /** The app a device-side call names (or the only one); a programming error in a test otherwise. */
  function knownApp(appId: string | undefined): string {
    if (!appId || !world.apps.has(appId))
      throw new Error(`sandbox: unknown app ${appId ?? "(none configured)"}`);
    return appId;
  }

  function forgetExpiredCodes(now: number) {
    for (const [code, issued] of codes) {
      if (now - issued.issuedAt > WECHAT_CODE_LIFETIME_MS) codes.delete(code);
      else break; // Map keeps insertion order, so the rest are younger.
    }
  }

  return {
    /** wx.login(): a single-use code, valid five minutes; the user's first one gives a session_key. */
    issueCode(input: IssueCodeInput = {}): { code: string; openid: string } {
      const appId = knownApp(input.appId ?? world.defaultAppId);
      const openid = input.openid ?? `o${randomId(20)}`;
      const key = userKey(appId, openid);
      if (input.rotateSessionKey || !sessionKeys.has(key))
        sessionKeys.set(key, randomBytes(16).toString("base64"));
      const now = clock.now();
      forgetExpiredCodes(now);
      const code = randomId(24).slice(0, 32);
      codes.set(code, { appId, openid, unionid: input.unionid, issuedAt: now, used: false });
      return { code, openid };
    },

    /** The getPhoneNumber button: a single-use code, valid five minutes, for this user's number. */
    issuePhoneCode({
      appId: requested,
      openid,
      phoneNumber = "+86 13800138000",
    }: {
      appId?: string;
      openid: string;
      phoneNumber?: string;
    }): { code: string } {
      const appId = knownApp(requested ?? world.defaultAppId);
      const code = randomId(24).slice(0, 32);
      phoneCodes.set(code, {
        appId,
        openid,
        unionid: undefined,
        issuedAt: clock.now(),
        used: false,
        phoneNumber,
      });
      return { code };
    },

    sessionKeyOf: (appId: string, openid: string): string | undefined =>
      sessionKeys.get(userKey(appId, openid)),

    /**
     * What a WeChat API on the device gives the mini-program: `data` plus a watermark (this app,
     * now), AES-128-CBC encrypted with the user's current session_key. `watermark` overrides it.
     */
    encryptUserData(
      appId: string,
      openid: string,
      data: Record<string, unknown>,
      watermark: { appid?: string; timestamp?: number } = {},
    ): { encryptedData: string; iv: string } {
      const sessionKey = sessionKeys.get(userKey(appId, openid));
      if (!sessionKey) throw new Error(`sandbox: ${appId}/${openid} has never logged in`);
      const plaintext = JSON.stringify({
        ...data,
        watermark: { appid: appId, timestamp: Math.floor(clock.now() / 1000), ...watermark },
      });
      const iv = randomBytes(16);
      const cipher = createCipheriv("aes-128-cbc", Buffer.from(sessionKey, "base64"), iv);
      const encrypted = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return { encryptedData: encrypted.toString("base64"), iv: iv.toString("base64") };
    },
  };
}
