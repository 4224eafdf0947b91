import { IdentityError, invalidArgument } from "../domain/errors.js";
import type { Clock } from "../domain/ports.js";
import {
  type AccessClaims,
  checkNotExpired,
  type TokenSettings,
  verifyAccessToken,
} from "../domain/tokens.js";
import type { RevocationMirror } from "../revocation/revocation-mirror.js";
import type { KeySchedule } from "../signing-keys/key-schedule.js";
import { entryBytes, TokenCache } from "../util/token-cache.js";

/** What a verified token's claims cost while cached (TokenCache's estimate). */
export function cachedClaimsBytes(claims: AccessClaims): number {
  const { userId, sessionId, tokenId, appId, openid, unionid, roles, permissions } = claims;
  return entryBytes([userId, sessionId, tokenId, appId, openid, unionid], roles, permissions);
}

/**
 * VERIFY_CACHE_BYTES, split: three quarters for the claims of verified tokens, a quarter for the
 * answers the ports keep ready for the most used of them (an answer costs more than the claims it
 * carries, ~800 bytes against ~590, and most cached tokens are asked about rarely).
 */
export function verifyCacheShares(totalBytes: number): { claims: number; answers: number } {
  const answers = Math.floor(totalBytes / 4);
  return { claims: totalBytes - answers, answers };
}

/**
 * VerifyToken, the hot path. A token verified once is kept in a cache bounded in bytes, so a
 * repeated token costs a digest and two map lookups: the cache and the revocation mirror. Expiry
 * is still checked on every call against the cached claims.
 */
export function createVerifyToken(deps: {
  // The key ring and the revocations here; their replicas in the gRPC thread and the local verifier.
  keyRing: Pick<KeySchedule, "verificationKeys">;
  revocations: Pick<RevocationMirror, "refusal">;
  settings: TokenSettings;
  clock: Clock;
  /** VERIFY_CACHE_BYTES: the claims of verified tokens take their share of it. */
  cacheBytes: number;
}) {
  const cache = new TokenCache<AccessClaims>({
    maxBytes: verifyCacheShares(deps.cacheBytes).claims,
    bytesOf: cachedClaimsBytes,
  });

  /** The token's claims; with `expectedAppId`, only a token of that app. */
  function verify(token: string, expectedAppId = ""): AccessClaims {
    if (token.length === 0) throw invalidArgument("access_token", "required");
    const now = deps.clock.now();
    // Size cap, structure, signature and claims: all in the one full check, on a miss only.
    const claims = cache.getOrAdd(token, () =>
      verifyAccessToken(deps.settings, deps.keyRing.verificationKeys(), token, now),
    );
    // A cached token expires too: its expiry is checked on every call.
    checkNotExpired(claims.expiresAt, now, deps.settings.leewayMs);
    const refusal = deps.revocations.refusal(claims.sessionId, claims.issuedAt);
    if (refusal === "revoked") {
      throw new IdentityError("TOKEN_REVOKED", "the session of this access token has ended");
    }
    // Answered as an expiry, so every client does what it does then: refresh, and get a token
    // with the user's current roles and permissions.
    if (refusal === "stale") {
      throw new IdentityError(
        "TOKEN_EXPIRED",
        "access token is out of date (its user's roles changed); refresh it",
      );
    }
    if (expectedAppId !== "" && claims.appId !== expectedAppId) {
      throw new IdentityError("TOKEN_APP_MISMATCH", "the access token was issued for another app");
    }
    return claims;
  }

  /** How many tokens the cache holds, its estimate of their bytes, and its hits and misses. */
  const cacheStats = () => ({ size: cache.size, bytes: cache.bytes, hits: cache.hits, misses: cache.misses });

  return { verify, cacheStats };
}

export type VerifyToken = ReturnType<typeof createVerifyToken>;
