import { type AccessClaims, signAccessToken, type TokenSettings } from "../domain/tokens.js";
import type { KeyRing } from "../signing-keys/key-ring.js";

export interface IssuedTokens {
  accessToken: string;
  accessClaims: AccessClaims;
  refreshToken: string;
  refreshTokenExpiresAt: Date;
}

/** What an access token says about its session (the rest of the claims are minted here). */
export type TokenSubject = Omit<AccessClaims, "tokenId" | "issuedAt" | "expiresAt">;

/**
 * The token pair Login and Refresh answer with: a new access token signed with the active key,
 * next to the session's current refresh token.
 */
export function issueTokenPair(
  deps: { keyRing: KeyRing; tokenSettings: TokenSettings },
  subject: TokenSubject,
  refresh: { token: string; expiresAt: Date },
  nowMs: number,
): IssuedTokens {
  const access = signAccessToken(deps.tokenSettings, deps.keyRing.signingKey(), subject, nowMs);
  return {
    accessToken: access.token,
    accessClaims: access.claims,
    refreshToken: refresh.token,
    refreshTokenExpiresAt: refresh.expiresAt,
  };
}
