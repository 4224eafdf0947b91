import type { RevokedSession } from "../domain/ports.js";

/**
 * The entries every SessionStore and AccountStore hands the revocation mirror. Either is kept until
 * every access token it could refuse has expired.
 */
export function sessionRefusals(maxAccessTokenTtlMs: number) {
  const forgetAfter = (at: Date) => new Date(at.getTime() + maxAccessTokenTtlMs);
  return {
    /** An ended session. */
    revokedSession: (id: string, revokedAt: Date): RevokedSession => ({
      id,
      forgetAfter: forgetAfter(revokedAt),
    }),
    /** A live session whose access tokens issued before `staleBefore` are out of date. */
    staleSession: (id: string, staleBefore: Date): RevokedSession => ({
      id,
      forgetAfter: forgetAfter(staleBefore),
      staleBefore,
    }),
  };
}
