import { randomBytes } from "node:crypto";
import type { AppCredentials, Clock } from "../domain/ports.js";

/**
 * What WeChat knows, as the sandbox keeps it: the apps and their secrets, the codes handed to
 * devices, each user's session_key, the apps' access_tokens. The WeChat API (wechat-api.ts) and
 * the simulated devices (device.ts) both work on it.
 */

export interface IssuedCode {
  appId: string;
  openid: string;
  unionid: string | undefined;
  issuedAt: number;
  used: boolean;
}

export interface AccessToken {
  token: string;
  expiresAt: number;
  /** The token this one renewed, valid until its own expiry. */
  previous?: AccessToken;
}

export interface SandboxWorld {
  clock: Clock;
  /** appId -> secret. */
  apps: Map<string, string>;
  defaultAppId: string | undefined;
  /** wx.login codes, oldest first. */
  codes: Map<string, IssuedCode>;
  phoneCodes: Map<string, IssuedCode & { phoneNumber: string }>;
  /** `${appId}/${openid}` -> the session_key WeChat holds for the user. */
  sessionKeys: Map<string, string>;
  /** appId -> its current access_token. */
  accessTokens: Map<string, AccessToken>;
}

export function createWorld(apps: readonly AppCredentials[], clock: Clock): SandboxWorld {
  return {
    clock,
    apps: new Map(apps.map((app) => [app.appId, app.appSecret])),
    defaultAppId: apps[0]?.appId,
    codes: new Map(),
    phoneCodes: new Map(),
    sessionKeys: new Map(),
    accessTokens: new Map(),
  };
}

export const userKey = (appId: string, openid: string) => `${appId}/${openid}`;

/** An identifier in WeChat's style (letters and digits). */
export function randomId(bytes: number): string {
  return randomBytes(bytes).toString("base64url").replace(/[-_]/g, "x");
}
