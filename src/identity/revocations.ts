import type { Clock, RevokedSession } from "../domain/ports.js";

/**
 * This instance's in-memory copy of the revoked sessions, so VerifyToken checks revocation
 * without I/O. An entry is forgotten once every access token of its session has expired anyway.
 */
export function createRevocationMirror(clock: Clock) {
  const revoked = new Map<string, number>();

  function sweep() {
    const now = clock.now();
    for (const [sessionId, forgetAfter] of revoked) if (forgetAfter <= now) revoked.delete(sessionId);
  }
  const sweeper = setInterval(sweep, 60_000);
  sweeper.unref();

  return {
    has: (sessionId: string): boolean => revoked.has(sessionId),
    add(session: RevokedSession): void {
      revoked.set(session.id, session.forgetAfter.getTime());
    },
    /** Replaces the mirror's content (at start, and after a resync). */
    replace(sessions: readonly RevokedSession[]): void {
      revoked.clear();
      for (const s of sessions) revoked.set(s.id, s.forgetAfter.getTime());
      sweep();
    },
    get size() {
      return revoked.size;
    },
    stop: () => clearInterval(sweeper),
  };
}

export type RevocationMirror = ReturnType<typeof createRevocationMirror>;
