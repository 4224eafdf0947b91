import { IdentityError, invalidArgument } from "../domain/errors.js";
import type { Clock, SessionTarget } from "../domain/ports.js";
import {
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
 * unknown, expired, forged or already revoked token answers OK and ends nothing. Only a value
 * that cannot be one of our tokens at all is refused, since that is a bug in the caller.
 * An access token is trusted only once its signature verifies; it may have expired, because the
 * session behind it can still be refreshed.
 */
export function createLogout(deps: {
  revocations: Revocations;
  keyRing: KeyRing;
  tokenSettings: TokenSettings;
  clock: Clock;
}) {
  function sessionOfAccessToken(token: string): SessionTarget | undefined {
    try {
      const claims = verifyAccessToken(
        deps.tokenSettings,
        deps.keyRing.verificationKeys(),
        token,
        deps.clock.now(),
        { allowExpired: true },
      );
      return { sessionId: claims.sessionId };
    } catch (err) {
      if (err instanceof IdentityError) return undefined; // not ours (any more): nothing to end
      throw err;
    }
  }

  return async function logout(input: LogoutInput): Promise<{ sessionsEnded: number }> {
    const { accessToken, refreshToken } = input;
    if (!accessToken && !refreshToken)
      throw invalidArgument("access_token", "an access_token or a refresh_token is required");
    if (accessToken && !isAccessTokenShaped(accessToken)) throw invalidArgument("access_token", "not a JWT");
    if (refreshToken && !isRefreshTokenShaped(refreshToken))
      throw invalidArgument("refresh_token", "not a refresh token issued by this service");

    const targets: SessionTarget[] = [];
    if (accessToken) {
      const target = sessionOfAccessToken(accessToken);
      if (target) targets.push(target);
    }
    if (refreshToken) targets.push({ refreshTokenHash: hashRefreshToken(refreshToken) });

    let sessionsEnded = 0;
    for (const target of targets) {
      sessionsEnded += await deps.revocations.revoke(target, {
        everySessionOfUser: input.allSessions,
        reason: input.allSessions ? "logout_all_sessions" : "logout",
      });
    }
    return { sessionsEnded };
  };
}

export type Logout = ReturnType<typeof createLogout>;
