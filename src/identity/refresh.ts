import { IdentityError } from "../domain/errors.js";
import type { Clock, RateLimiter, RefreshableSession, SessionStore } from "../domain/ports.js";
import type { Sealer } from "../domain/sealing.js";
import {
  hashRefreshToken,
  isRefreshTokenShaped,
  newRefreshToken,
  type TokenSettings,
} from "../domain/tokens.js";
import type { Revocations } from "../revocation/revocations.js";
import type { KeyRing } from "../signing-keys/key-ring.js";
import { timeLeftForWork } from "./deadline.js";
import { type ClientInfo, endUserKeys, NO_CLIENT_INFO, withFailureLimit } from "./end-user.js";
import { type IssuedTokens, issueTokenPair } from "./issue-token-pair.js";
import type { SessionSettings } from "./login.js";

const COUNTED_FAILURES = new Set<string>(["TOKEN_INVALID", "REFRESH_TOKEN_REUSED"]);

/**
 * Refresh: spends a refresh token and returns a new pair (rotation, RFC 9700 4.14). A spent token
 * presented again means two parties hold it, so the whole session ends (REFRESH_TOKEN_REUSED),
 * with one exception: the immediate predecessor of the newest token, within a short grace after
 * it was spent, gets the same successor again. A mini-program fires several requests at once
 * when its access token expires, and each may refresh; they all end up on one chain.
 */
export function createRefresh(deps: {
  sessions: SessionStore;
  revocations: Revocations;
  keyRing: KeyRing;
  sealer: Sealer;
  tokenSettings: TokenSettings;
  sessionSettings: SessionSettings & { refreshReuseGraceMs: number };
  clock: Clock;
  /** Failed refreshes per end user; one over it is refused before the store is asked. */
  refreshFailures: RateLimiter;
}) {
  /** A new access token for the session, next to the refresh token it now holds. */
  const issue = (session: RefreshableSession, refreshToken: string, now: number): IssuedTokens =>
    issueTokenPair(
      deps,
      {
        userId: session.userId,
        sessionId: session.id,
        appId: session.appId,
        openid: session.openid,
        unionid: session.unionid ?? "",
        roles: session.roles,
        permissions: session.permissions,
      },
      // The store caps the idle expiry at the absolute one.
      { token: refreshToken, expiresAt: session.idleExpiresAt },
      now,
    );

  /**
   * Refreshes, counting the failures that point at guessing or a stolen token (an unknown token, a
   * spent one again) against the end user. A session that simply ended (expired, logged out) is
   * the normal end of a client's tokens and is not counted.
   */
  return async function refresh(
    refreshToken: string,
    from: {
      client?: ClientInfo;
      callerAddress?: string;
      /** The caller's deadline (ms since the epoch); none: the statement timeout alone bounds it. */
      deadlineAt?: number;
    } = {},
  ): Promise<IssuedTokens> {
    const keys = endUserKeys(from.client ?? NO_CLIENT_INFO, from.callerAddress);
    return withFailureLimit(deps.refreshFailures, keys, COUNTED_FAILURES, () =>
      rotate(refreshToken, from.deadlineAt, from.client ?? NO_CLIENT_INFO),
    );
  };

  async function rotate(
    refreshToken: string,
    deadlineAt: number | undefined,
    client: ClientInfo,
  ): Promise<IssuedTokens> {
    if (!isRefreshTokenShaped(refreshToken))
      throw new IdentityError("TOKEN_INVALID", "this is not a refresh token issued by this service");

    const now = deps.clock.now();
    const successor = newRefreshToken();
    const result = await deps.sessions.rotateRefreshToken({
      tokenHash: hashRefreshToken(refreshToken),
      now: new Date(now),
      successor: {
        tokenHash: successor.hash,
        // Kept only when a parallel refresh may ask for it again.
        sealedToken: deps.sessionSettings.refreshReuseGraceMs > 0 ? deps.sealer.seal(successor.token) : null,
        idleExpiresAt: new Date(now + deps.sessionSettings.refreshIdleTtlMs),
      },
      timeLeftMs: timeLeftForWork(deadlineAt) ?? null,
    });
    if (!result.found) throw new IdentityError("TOKEN_INVALID", "unknown refresh token");
    const { session, token } = result;
    if (result.rotated) return issue(session, successor.token, now);
    if (result.tooLate) {
      throw new IdentityError("DEADLINE_EXCEEDED", "the deadline passed before the token could be rotated");
    }

    if (session.revokedAt) throw new IdentityError("TOKEN_REVOKED", "this session has ended");
    if (session.idleExpiresAt.getTime() <= now || session.absoluteExpiresAt.getTime() <= now)
      throw new IdentityError("TOKEN_EXPIRED", "this session has expired: log in again");
    if (session.userDisabled) throw new IdentityError("USER_DISABLED", "this user has been disabled");

    const isParentOfNewest = token.generation === session.generation - 1;
    const withinGrace =
      token.spentAt !== null && now - token.spentAt.getTime() <= deps.sessionSettings.refreshReuseGraceMs;
    if (isParentOfNewest && withinGrace && token.sealedSuccessor) {
      return issue(session, deps.sealer.open(token.sealedSuccessor), now);
    }

    // A spent token again, outside the grace: someone else holds this session's tokens.
    await deps.revocations.revoke(
      { sessionId: session.id },
      {
        everySessionOfUser: false,
        reason: "refresh_token_reused",
        audit: { type: "refresh_token.reused", actor: null, ip: client.ip, userAgent: client.userAgent },
      },
    );
    throw new IdentityError(
      "REFRESH_TOKEN_REUSED",
      "this refresh token was already used: the session has been ended, log in again",
    );
  }
}

export type Refresh = ReturnType<typeof createRefresh>;
