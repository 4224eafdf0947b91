import type { Clock } from "../domain/ports.js";

/** A revoked session as the mirror keeps it: [sessionId, forgetAfterMs]. */
export type RevocationEntry = [sessionId: string, forgetAfterMs: number];

/**
 * The in-memory set of ended sessions VerifyToken checks. An entry is forgotten once every access
 * token its session could have issued has expired anyway.
 */
export function createRevocationMirror(clock: Clock) {
  const ended = new Map<string, number>();
  return {
    /** Adds the batch's live entries; returns those the mirror did not hold yet. */
    add(batch: readonly RevocationEntry[]): RevocationEntry[] {
      const now = clock.now();
      const added: RevocationEntry[] = [];
      for (const entry of batch) {
        const [sessionId, forgetAfter] = entry;
        if (forgetAfter <= now || ended.has(sessionId)) continue;
        ended.set(sessionId, forgetAfter);
        added.push(entry);
      }
      return added;
    },
    forgetExpired(): void {
      const now = clock.now();
      for (const [sessionId, forgetAfter] of ended) if (forgetAfter <= now) ended.delete(sessionId);
    },
    isRevoked: (sessionId: string): boolean => ended.has(sessionId),
    entries: (): RevocationEntry[] => [...ended],
    get size() {
      return ended.size;
    },
  };
}
