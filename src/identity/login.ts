import { randomUUID } from "node:crypto";
import type { AppRegistry } from "../domain/app-registry.js";
import { IdentityError, invalidArgument } from "../domain/errors.js";
import type { AppCredentials, Clock, RateLimiter, SessionStore, UserRecord } from "../domain/ports.js";
import { hasControlCharacters } from "../domain/text.js";
import { hashRefreshToken, newRefreshToken, type TokenSettings } from "../domain/tokens.js";
import type { KeyRing } from "../signing-keys/key-ring.js";
import type { CodeExchange } from "../wechat-session/code-exchange.js";
import type { SessionKeyVault } from "../wechat-session/session-key-vault.js";
import { type IssuedTokens, issueTokenPair } from "./issue-token-pair.js";

export interface LoginInput {
  appId: string;
  code: string;
  /** Made by the client for this code and sent again on a retry; "" when it sends none. */
  attemptId: string;
  client: { ip: string; userAgent: string; deviceId: string };
  /** The caller's network address: what failed logins are counted by when there is no ClientInfo. */
  callerAddress?: string;
}

/** Failures the client caused (not ours, not WeChat's): what the failed-login limit counts. */
const CLIENT_FAULTS = new Set<string>(["INVALID_CODE", "CODE_USED", "HIGH_RISK_USER", "USER_DISABLED"]);

/**
 * What identifies the end user behind a login, as the BFF passes it: the user's address and
 * device. The caller's own address only when there is neither, so that a BFF serving thousands
 * of users is never throttled as one client.
 */
function clientKeys(input: LoginInput): string[] {
  const keys: string[] = [];
  if (input.client.ip) keys.push(`ip:${input.client.ip}`);
  if (input.client.deviceId) keys.push(`device:${input.client.deviceId}`);
  if (keys.length === 0 && input.callerAddress) keys.push(`caller:${input.callerAddress}`);
  return keys;
}

export interface LoginResult {
  tokens: IssuedTokens;
  user: UserRecord & { appId: string; openid: string; unionid: string | null };
  newUser: boolean;
}

export interface SessionSettings {
  refreshIdleTtlMs: number;
  sessionAbsoluteTtlMs: number;
}

const MAX_CODE_LENGTH = 128;
const MAX_ATTEMPT_ID_LENGTH = 64;
const PRINTABLE = /^[\x21-\x7e]+$/;

/** Checked before WeChat is asked, so a refused request never spends its code. */
function checkInput(input: LoginInput): LoginInput {
  const fields = [
    ["client.ip", input.client.ip],
    ["client.user_agent", input.client.userAgent],
    ["client.device_id", input.client.deviceId],
  ] as const;
  for (const [field, value] of fields) {
    if (hasControlCharacters(value)) throw invalidArgument(field, "contains control characters");
  }
  if (input.code.length === 0) throw invalidArgument("code", "required: pass the code from wx.login()");
  if (input.code.length > MAX_CODE_LENGTH)
    throw invalidArgument("code", `longer than ${MAX_CODE_LENGTH} characters`);
  if (!PRINTABLE.test(input.code)) throw invalidArgument("code", "contains spaces or non-ASCII characters");
  if (input.attemptId.length > MAX_ATTEMPT_ID_LENGTH)
    throw invalidArgument("attempt_id", `longer than ${MAX_ATTEMPT_ID_LENGTH} characters`);
  if (input.attemptId !== "" && !PRINTABLE.test(input.attemptId))
    throw invalidArgument("attempt_id", "contains spaces or non-ASCII characters");
  if (input.client.ip.length > 64) throw invalidArgument("client.ip", "longer than 64 characters");
  if (input.client.deviceId.length > 128)
    throw invalidArgument("client.device_id", "longer than 128 characters");
  // User agents are informational and sometimes huge: keep the start rather than refuse a login.
  return { ...input, client: { ...input.client, userAgent: input.client.userAgent.slice(0, 512) } };
}

/**
 * Login: wx.login code -> WeChat code2Session -> user (created on first login) -> session with
 * its first refresh token -> session_key kept server-side -> token pair.
 */
export function createLogin(deps: {
  apps: AppRegistry;
  codeExchange: CodeExchange;
  sessions: SessionStore;
  sessionKeys: SessionKeyVault;
  keyRing: KeyRing;
  tokenSettings: TokenSettings;
  sessionSettings: SessionSettings;
  clock: Clock;
  /** Failed logins per client; a client over it is refused before WeChat is asked. */
  loginFailures: RateLimiter;
}) {
  return async function login(rawInput: LoginInput): Promise<LoginResult> {
    const input = checkInput(rawInput);
    const app = deps.apps.resolve(input.appId);
    const keys = clientKeys(input);
    await Promise.all(keys.map((key) => deps.loginFailures.check(key)));
    try {
      return await logIn(input, app);
    } catch (err) {
      if (err instanceof IdentityError && CLIENT_FAULTS.has(err.reason)) {
        await Promise.all(keys.map((key) => deps.loginFailures.count(key).catch(() => {})));
      }
      throw err;
    }
  };

  async function logIn(input: LoginInput, app: AppCredentials): Promise<LoginResult> {
    const attempt = await deps.codeExchange.exchange(app, input.code, input.attemptId);
    const wechat = attempt.session;
    const now = deps.clock.now();
    // A retry of the attempt stores (idempotently) and answers the session its first try planned.
    const { plan, remembered } = attempt.planSession(() => ({
      sessionId: randomUUID(),
      refreshToken: newRefreshToken().token,
      createdAt: now,
      idleExpiresAt: now + deps.sessionSettings.refreshIdleTtlMs,
      absoluteExpiresAt: now + deps.sessionSettings.sessionAbsoluteTtlMs,
    }));
    const idleExpiresAt = new Date(plan.idleExpiresAt);
    const [found] = await Promise.all([
      deps.sessions.start(
        { appId: app.appId, openid: wechat.openid, unionid: wechat.unionid },
        {
          id: plan.sessionId,
          refreshTokenHash: hashRefreshToken(plan.refreshToken),
          createdAt: new Date(plan.createdAt),
          idleExpiresAt,
          absoluteExpiresAt: new Date(plan.absoluteExpiresAt),
          client: input.client,
        },
      ),
      // The session_key is WeChat's fact about this login, kept even when the user is disabled.
      deps.sessionKeys.put(app.appId, wechat.openid, wechat.sessionKey),
      remembered,
    ]);
    if (!found.sessionStored) throw new IdentityError("USER_DISABLED", "this user has been disabled");

    const tokens = issueTokenPair(
      deps,
      {
        userId: found.user.id,
        sessionId: plan.sessionId,
        appId: app.appId,
        openid: wechat.openid,
        unionid: found.unionid ?? "",
        roles: found.user.roles,
      },
      // Config keeps the idle lifetime within the absolute one.
      { token: plan.refreshToken, expiresAt: idleExpiresAt },
      now,
    );
    return {
      tokens,
      user: { ...found.user, appId: app.appId, openid: wechat.openid, unionid: found.unionid },
      newUser: found.created,
    };
  }
}

export type Login = ReturnType<typeof createLogin>;
