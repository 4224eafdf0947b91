import type { AppRegistry } from "../domain/app-registry.js";
import { IdentityError } from "../domain/errors.js";
import type {
  AppCredentials,
  Clock,
  RateLimiter,
  SessionStart,
  SessionStore,
  UserRecord,
} from "../domain/ports.js";
import { newRowId } from "../domain/row-id.js";
import { hashRefreshToken, newRefreshToken, type TokenSettings } from "../domain/tokens.js";
import type { KeyRing } from "../signing-keys/key-ring.js";
import type { CodeExchange } from "../wechat-session/code-exchange.js";
import type { PhoneNumbers } from "../wechat-session/phone-numbers.js";
import type { SessionKeyVault } from "../wechat-session/session-key-vault.js";
import { timeLeftForWork } from "./deadline.js";
import { type ClientInfo, endUserKeys, withFailureLimit } from "./end-user.js";
import { type IssuedTokens, issueTokenPair } from "./issue-token-pair.js";
import type { RecordLoginFailure } from "./login-failures.js";
import { type ProfileDefaults, withProfileDefaults } from "./update-profile.js";

export interface LoginInput {
  appId: string;
  code: string;
  /** Made by the client for this code and sent again on a retry; "" when it sends none. */
  attemptId: string;
  client: ClientInfo;
  /** The caller's network address: what failed logins are counted by when there is no ClientInfo. */
  callerAddress?: string;
  /** When the caller stops waiting (Date.now() ms): WeChat is asked only with time left to answer. */
  deadlineAt?: number;
  /**
   * LoginWithPhone: the getPhoneNumber button's code. The user is then found by the phone number
   * WeChat verifies as well as by the openid, and the one missing is linked.
   */
  phoneCode?: string;
}

/** Less time than this left and WeChat is not asked (a round trip to it takes ~50-300 ms). */
const MIN_WECHAT_MS = 100;

/** Failures the client caused (not ours, not WeChat's): what the failed-login limit counts. */
const CLIENT_FAULTS = new Set<string>([
  "INVALID_CODE",
  "CODE_USED",
  "HIGH_RISK_USER",
  "USER_DISABLED",
  "INVALID_PHONE_CODE",
  "ACCOUNT_CONFLICT",
]);

const accountConflict = () =>
  new IdentityError(
    "ACCOUNT_CONFLICT",
    "this phone number and this WeChat account belong to two different users: an administrator can merge them",
  );

export interface LoginResult {
  tokens: IssuedTokens;
  user: UserRecord & { appId: string; openid: string; unionid: string | null };
  /** What the user's roles grant (in the access token too). */
  permissions: string[];
  newUser: boolean;
}

export interface SessionSettings {
  refreshIdleTtlMs: number;
  sessionAbsoluteTtlMs: number;
}

/**
 * The request's field limits are the proto's (buf.validate rules, checked by the transport before
 * WeChat is asked, so a refused request never spends its code). User agents are informational and
 * sometimes huge: the start is kept rather than the login refused.
 */
function trimInput(input: LoginInput): LoginInput {
  return { ...input, client: { ...input.client, userAgent: input.client.userAgent.slice(0, 512) } };
}

/**
 * Login: wx.login code -> WeChat code2Session -> user (created on first login) -> session with
 * its first refresh token -> session_key kept server-side -> token pair. With a phone code
 * (LoginWithPhone) WeChat's verified number finds or links the user too. Failures go to the audit
 * log.
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
  profileDefaults: ProfileDefaults;
  phoneNumbers: PhoneNumbers;
  recordFailure: RecordLoginFailure;
}) {
  return async function login(rawInput: LoginInput): Promise<LoginResult> {
    const input = trimInput(rawInput);
    const app = deps.apps.resolve(input.appId);
    const keys = endUserKeys(input.client, input.callerAddress);
    try {
      return await withFailureLimit(deps.loginFailures, keys, CLIENT_FAULTS, () => logIn(input, app));
    } catch (err) {
      if (err instanceof IdentityError) {
        const client = { ...input.client, ip: input.client.ip || (input.callerAddress ?? "") };
        const method = input.phoneCode === undefined ? "wechat" : "phone";
        await deps.recordFailure(method, client, err, { app_id: app.appId });
      }
      throw err;
    }
  };

  async function logIn(input: LoginInput, app: AppCredentials): Promise<LoginResult> {
    // WeChat gets what is left but a moment to answer in: a WeChat too slow for the caller's
    // deadline is then reported as such (WECHAT_UNAVAILABLE), not as the caller's timeout.
    const timeoutMs = timeLeftForWork(input.deadlineAt);
    // Too late to ask: the code is kept unspent for a retry with a longer deadline.
    if (timeoutMs !== undefined && timeoutMs < MIN_WECHAT_MS) {
      throw new IdentityError("DEADLINE_EXCEEDED", "too little of the call's deadline left to ask WeChat");
    }
    const attempt = await deps.codeExchange.exchange(app, input.code, input.attemptId, { timeoutMs });
    const wechat = attempt.session;
    const phone =
      input.phoneCode === undefined
        ? undefined
        : (attempt.earlierPlan?.phone ??
          (await deps.phoneNumbers.verify(app, input.phoneCode, wechat.openid)));
    const now = deps.clock.now();
    // A retry of the attempt stores (idempotently) and answers the session its first try planned.
    const { plan, remembered } = attempt.planSession(() => ({
      sessionId: newRowId(),
      refreshToken: newRefreshToken().token,
      createdAt: now,
      idleExpiresAt: now + deps.sessionSettings.refreshIdleTtlMs,
      absoluteExpiresAt: now + deps.sessionSettings.sessionAbsoluteTtlMs,
      phone,
    }));
    const idleExpiresAt = new Date(plan.idleExpiresAt);
    const identity = { appId: app.appId, openid: wechat.openid, unionid: wechat.unionid };
    const start: SessionStart = {
      id: plan.sessionId,
      refreshTokenHash: hashRefreshToken(plan.refreshToken),
      createdAt: new Date(plan.createdAt),
      idleExpiresAt,
      absoluteExpiresAt: new Date(plan.absoluteExpiresAt),
      client: input.client,
    };
    const [found] = await Promise.all([
      phone
        ? deps.sessions.startWithPhone(identity, phone.phoneNumber, start)
        : deps.sessions.start(identity, start),
      // The session_key is WeChat's fact about this login, kept even when the user is disabled.
      deps.sessionKeys.put(app.appId, wechat.openid, wechat.sessionKey),
      remembered,
    ]);
    if (found === "conflict") throw accountConflict();
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
        permissions: found.permissions,
      },
      // Config keeps the idle lifetime within the absolute one.
      { token: plan.refreshToken, expiresAt: idleExpiresAt },
      now,
    );
    return {
      tokens,
      user: withProfileDefaults(
        { ...found.user, appId: app.appId, openid: wechat.openid, unionid: found.unionid },
        deps.profileDefaults,
      ),
      permissions: found.permissions,
      newUser: found.created,
    };
  }
}

export type Login = ReturnType<typeof createLogin>;
