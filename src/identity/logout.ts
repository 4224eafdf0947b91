import { IdentityError, invalidArgument } from "../domain/errors.js";
import type { Clock, SessionTarget } from "../domain/ports.js";
import {
  type AccessClaims,
  hashRefreshToken,
  isAccessTokenShaped,
  isRefreshTokenShaped,
  type TokenSettings,
  verifyAccessToken,
} from "../domain/tokens.js";
import type { Revocations } from "../revocation/revocations.js";
import type { KeyRing } from "../signing-keys/key-ring.js";

export interface LogoutInput {
  accessToken: string;
  refreshToken: string;
  allSessions: boolean;
}

/**
 * Logout ends the session behind an access token or a refresh token (both may be given), or with
 * allSessions every session of its user. Like token revocation (RFC 7009) it is idempotent: an
 * unknown, expired, forged or already revoked token answers OK and ends nothing more. Only a value
 * that cannot be one of our tokens at all is refused, since that is a bug in the caller.
 *
 * What an old token found in a log can do is bounded:
 * - an access token is trusted once its signature verifies; an expired one still names its session
 *   (which may still be refreshed) for as long as a refresh could have kept that session alive
 *   after the token was issued (the refresh idle lifetime), and never after;
 * - allSessions takes an unexpired access token, or the session's newest unspent refresh token
 *   (the store checks that); an expired access token alone is refused with TOKEN_EXPIRED.
 */
export function createLogout(deps: {
  revocations: Revocations;
  keyRing: KeyRing;
  tokenSettings: TokenSettings;
  sessionSettings: { refreshIdleTtlMs: number };
  clock: Clock;
}) {
  /** The session an access token names, and whether the token is unexpired. */
  function sessionOfAccessToken(token: string): { target: SessionTarget; live: boolean } | undefined {
    const now = deps.clock.now();
    let claims: AccessClaims;
    try {
      claims = verifyAccessToken(deps.tokenSettings, deps.keyRing.verificationKeys(), token, now, {
        allowExpired: true,
      });
    } catch (err) {
      if (err instanceof IdentityError) return undefined; // not ours (any more): nothing to end
      throw err;
    }
    const live = claims.expiresAt * 1000 > now - deps.tokenSettings.leewayMs;
    if (!live && claims.issuedAt * 1000 + deps.sessionSettings.refreshIdleTtlMs <= now) return undefined;
    return { target: { sessionId: claims.sessionId }, live };
  }

  return async function logout(input: LogoutInput): Promise<{ sessionsEnded: number }> {
    const { accessToken, refreshToken, allSessions } = input;
    if (accessToken && !isAccessTokenShaped(accessToken)) throw invalidArgument("access_token", "not a JWT");
    if (refreshToken && !isRefreshTokenShaped(refreshToken))
      throw invalidArgument("refresh_token", "not a refresh token issued by this service");

    const targets: Array<{ target: SessionTarget; everySessionOfUser: boolean }> = [];
    const named = accessToken ? sessionOfAccessToken(accessToken) : undefined;
    if (named) {
      if (allSessions && !named.live && !refreshToken) {
        throw new IdentityError(
          "TOKEN_EXPIRED",
          "all_sessions needs an unexpired access token or the session's current refresh token",
        );
      }
      targets.push({ target: named.target, everySessionOfUser: allSessions && named.live });
    }
    if (refreshToken) {
      // The store ends every session only when this is the live session's newest token.
      targets.push({
        target: { refreshTokenHash: hashRefreshToken(refreshToken) },
        everySessionOfUser: allSessions,
      });
    }

    let sessionsEnded = 0;
    for (const { target, everySessionOfUser } of targets) {
      sessionsEnded += await deps.revocations.revoke(target, {
        everySessionOfUser,
        reason: allSessions ? "logout_all_sessions" : "logout",
        audit: { type: "logout", actor: null, ip: "", userAgent: "" },
      });
    }
    return { sessionsEnded };
  };
}

export type Logout = ReturnType<typeof createLogout>;
