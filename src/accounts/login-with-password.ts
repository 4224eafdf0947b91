import { IdentityError } from "../domain/errors.js";
import type { AccountStore, Clock, RateLimiter, SessionStore } from "../domain/ports.js";
import { newRowId } from "../domain/row-id.js";
import { hashRefreshToken, newRefreshToken, type TokenSettings } from "../domain/tokens.js";
import { type ClientInfo, endUserKeys, withFailureLimit } from "../identity/end-user.js";
import { issueTokenPair } from "../identity/issue-token-pair.js";
import type { LoginResult, SessionSettings } from "../identity/login.js";
import type { RecordLoginFailure } from "../identity/login-failures.js";
import { type ProfileDefaults, withProfileDefaults } from "../identity/update-profile.js";
import type { KeyRing } from "../signing-keys/key-ring.js";
import { normalizeUsername, type PasswordHasher } from "./password-hasher.js";

export interface PasswordLoginInput {
  username: string;
  password: string;
  client: ClientInfo;
  callerAddress?: string;
}

/** What the failure limit counts: wrong passwords and unknown names (a disabled account is not guessing). */
const COUNTED = new Set<string>(["INVALID_CREDENTIALS"]);

/** The one answer for an unknown username and a wrong password, so neither tells the other apart. */
const invalidCredentials = () =>
  new IdentityError("INVALID_CREDENTIALS", "the username or the password is not right");

/**
 * LoginWithPassword, for staff accounts: argon2id verification (a decoy hash for unknown names,
 * so they take as long), failures limited per account and per end user, then a session under
 * STAFF_APP_ID with the same token pair as every login. Failures are written to the audit log.
 */
export function createLoginWithPassword(deps: {
  accounts: Pick<AccountStore, "findPasswordCredential">;
  recordFailure: RecordLoginFailure;
  sessions: Pick<SessionStore, "startForUser">;
  hasher: PasswordHasher;
  keyRing: KeyRing;
  tokenSettings: TokenSettings;
  sessionSettings: SessionSettings;
  clock: Clock;
  passwordFailures: RateLimiter;
  staffAppId: string;
  profileDefaults: ProfileDefaults;
}) {
  return async function loginWithPassword(input: PasswordLoginInput): Promise<LoginResult> {
    const username = normalizeUsername(input.username);
    const keys = [`account:${username}`, ...endUserKeys(input.client, input.callerAddress)];
    try {
      return await withFailureLimit(deps.passwordFailures, keys, COUNTED, () => logIn(username, input));
    } catch (err) {
      if (err instanceof IdentityError) await deps.recordFailure("password", input.client, err, { username });
      throw err;
    }
  };

  async function logIn(username: string, input: PasswordLoginInput): Promise<LoginResult> {
    const credential = await deps.accounts.findPasswordCredential(username);
    const matches = credential
      ? await deps.hasher.verify(credential.passwordHash, input.password)
      : await deps.hasher.verifyDecoy(input.password);
    if (!credential || !matches) throw invalidCredentials();

    const now = deps.clock.now();
    const refresh = newRefreshToken();
    const sessionId = newRowId();
    const idleExpiresAt = new Date(now + deps.sessionSettings.refreshIdleTtlMs);
    const started = await deps.sessions.startForUser(credential.userId, deps.staffAppId, {
      id: sessionId,
      refreshTokenHash: hashRefreshToken(refresh.token),
      createdAt: new Date(now),
      idleExpiresAt,
      absoluteExpiresAt: new Date(now + deps.sessionSettings.sessionAbsoluteTtlMs),
      client: { ...input.client, userAgent: input.client.userAgent.slice(0, 512) },
    });
    if (!started) throw invalidCredentials();
    if (!started.sessionStored) throw new IdentityError("USER_DISABLED", "this user has been disabled");
    const tokens = issueTokenPair(
      deps,
      {
        userId: started.user.id,
        sessionId,
        appId: deps.staffAppId,
        openid: "",
        unionid: started.user.unionid ?? "",
        roles: started.user.roles,
        permissions: started.permissions,
      },
      { token: refresh.token, expiresAt: idleExpiresAt },
      now,
    );
    return {
      tokens,
      user: withProfileDefaults(
        { ...started.user, appId: deps.staffAppId, openid: "", unionid: started.user.unionid },
        deps.profileDefaults,
      ),
      permissions: started.permissions,
      newUser: false,
    };
  }
}

export type LoginWithPassword = ReturnType<typeof createLoginWithPassword>;
