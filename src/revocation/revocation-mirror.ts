import type { Clock } from "../domain/ports.js";

/**
 * A session as the mirror keeps it: [sessionId, forgetAfterMs] when it has ended, or
 * [sessionId, forgetAfterMs, staleBeforeMs] when its access tokens issued before staleBeforeMs are
 * out of date (its user's roles changed) but the session lives on.
 */
export type RevocationEntry =
  | [sessionId: string, forgetAfterMs: number]
  | [sessionId: string, forgetAfterMs: number, staleBeforeMs: number];

/** Why VerifyToken refuses a token: its session ended, or the token predates a change of its user's roles. */
export type Refusal = "revoked" | "stale";

/** An ended session refuses every token: as if stale before the end of time. */
const staleBeforeOf = (entry: RevocationEntry) => entry[2] ?? Number.POSITIVE_INFINITY;

/**
 * The in-memory set of sessions VerifyToken checks: ended ones, and live ones whose older tokens
 * are out of date. An entry is forgotten once every access token it could refuse has expired.
 */
export function createRevocationMirror(clock: Clock) {
  const sessions = new Map<string, RevocationEntry>();
  return {
    /** Adds what the batch changes (an end over a staleness, a later staleness); returns those entries. */
    add(batch: readonly RevocationEntry[]): RevocationEntry[] {
      const now = clock.now();
      const added: RevocationEntry[] = [];
      for (const entry of batch) {
        if (entry[1] <= now) continue;
        const held = sessions.get(entry[0]);
        if (held && staleBeforeOf(held) >= staleBeforeOf(entry)) continue;
        sessions.set(entry[0], entry);
        added.push(entry);
      }
      return added;
    },
    forgetExpired(): void {
      const now = clock.now();
      for (const [sessionId, entry] of sessions) if (entry[1] <= now) sessions.delete(sessionId);
    },
    /** The hot path: should a token of this session, issued at `issuedAtSeconds`, be refused? */
    refusal(sessionId: string, issuedAtSeconds: number): Refusal | undefined {
      const entry = sessions.get(sessionId);
      if (entry === undefined) return undefined;
      if (entry.length === 2) return "revoked";
      // iat has whole seconds: tokens of earlier seconds are refused. One issued in the second
      // of the change is kept, since refusing it would send a client that refreshed just after
      // the change round again until the second is over; so a token issued in the same second
      // just before the change keeps its old roles until it expires (docs/accounts.md).
      return issuedAtSeconds * 1000 < entry[2] - (entry[2] % 1000) ? "stale" : undefined;
    },
    entries: (): RevocationEntry[] => [...sessions.values()],
    get size() {
      return sessions.size;
    },
  };
}

export type RevocationMirror = ReturnType<typeof createRevocationMirror>;
