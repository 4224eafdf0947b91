import { IdentityError, invalidArgument } from "../domain/errors.js";
import type { Clock } from "../domain/ports.js";
import {
  type AccessClaims,
  checkNotExpired,
  type TokenSettings,
  verifyAccessToken,
} from "../domain/tokens.js";
import { LruCache } from "../util/lru-cache.js";
import type { KeyRing } from "./key-ring.js";
import type { Revocations } from "./revocations.js";

/**
 * The cache's key: the token's last characters, which are signature bytes. Hashing the whole
 * ~700-character token for each lookup cost about 1 µs of a warm call; a hit is still compared
 * with the whole token, so a token that only shares the tail (a forgery reusing a genuine
 * signature) misses and gets the full check.
 */
const CACHE_KEY_CHARS = 32;

/**
 * VerifyToken, the hot path. A token verified once is kept in a bounded LRU cache, so a repeated
 * token costs two map lookups: the cache and the revocation mirror. Expiry is still checked on
 * every call against the cached claims.
 */
export function createVerifyToken(deps: {
  keyRing: KeyRing;
  revocations: Pick<Revocations, "isRevoked">;
  settings: TokenSettings;
  clock: Clock;
  cacheSize: number;
}) {
  const cache = new LruCache<string, { token: string; claims: AccessClaims }>(deps.cacheSize);

  function verify(token: string): AccessClaims {
    if (token.length === 0) throw invalidArgument("access_token", "required");
    const now = deps.clock.now();
    const key = token.slice(-CACHE_KEY_CHARS);
    const hit = cache.get(key);
    let claims: AccessClaims;
    if (hit !== undefined && hit.token === token) {
      claims = hit.claims;
      checkNotExpired(claims.expiresAt, now, deps.settings.leewaySeconds);
    } else {
      // Size cap, structure, signature and claims: all in the one full check.
      claims = verifyAccessToken(deps.settings, deps.keyRing.verificationKeys(), token, now);
      cache.set(key, { token, claims });
    }
    if (deps.revocations.isRevoked(claims.sessionId)) {
      throw new IdentityError("TOKEN_REVOKED", "the session of this access token has ended");
    }
    return claims;
  }

  return { verify };
}

export type VerifyToken = ReturnType<typeof createVerifyToken>;
