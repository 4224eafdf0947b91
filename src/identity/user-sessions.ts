import { validate as isUuid } from "uuid";
import type { Clock, LiveSession, SessionStore } from "../domain/ports.js";
import type { Revocations } from "../revocation/revocations.js";
import type { VerifyToken } from "./verify-token.js";

/** Most sessions one ListSessions answers with; EndSession's all_others goes through them in pages of it. */
const MAX_LISTED_SESSIONS = 100;

export interface ListedSession extends LiveSession {
  /** The session of the access token that asked. */
  current: boolean;
}

export interface EndSessionInput {
  accessToken: string;
  /** One session to end, or "" with allOthers (the request's rules allow one of the two). */
  sessionId: string;
  /** Every session of the user but the token's own. */
  allOthers: boolean;
}

/**
 * A user's own view of their sessions (ListSessions, EndSession): with an unexpired, unrevoked
 * access token, a user sees where and when each live session started, and ends one, or all but
 * the current one, through the revocation path (durable, then on every instance).
 */
export function createUserSessions(deps: {
  verifyToken: Pick<VerifyToken, "verify">;
  sessions: Pick<SessionStore, "listLiveSessions">;
  revocations: Pick<Revocations, "revoke">;
  clock: Clock;
}) {
  const live = (userId: string) =>
    deps.sessions.listLiveSessions(userId, new Date(deps.clock.now()), MAX_LISTED_SESSIONS);

  async function listSessions(accessToken: string): Promise<ListedSession[]> {
    const claims = deps.verifyToken.verify(accessToken);
    return (await live(claims.userId)).map((s) => ({ ...s, current: s.id === claims.sessionId }));
  }

  async function endSession(input: EndSessionInput): Promise<{ sessionsEnded: number }> {
    const claims = deps.verifyToken.verify(input.accessToken);
    // Only a session of this user (the store checks): any other id ends nothing, and says
    // nothing about it.
    const end = (sessionId: string) =>
      deps.revocations.revoke(
        { sessionId, userId: claims.userId },
        {
          everySessionOfUser: false,
          reason: "ended_by_user",
          audit: { type: "session.ended_by_user", actor: null, ip: "", userAgent: "" },
        },
      );
    if (!input.allOthers) {
      // One that cannot be a session id is not even looked up.
      return { sessionsEnded: isUuid(input.sessionId) ? await end(input.sessionId) : 0 };
    }
    let sessionsEnded = 0;
    for (;;) {
      const others = (await live(claims.userId)).filter((s) => s.id !== claims.sessionId);
      for (const s of others) sessionsEnded += await end(s.id);
      // A full page may have more behind it; the ended ones are no longer listed.
      if (others.length < MAX_LISTED_SESSIONS - 1) return { sessionsEnded };
    }
  }

  return { listSessions, endSession };
}

export type UserSessions = ReturnType<typeof createUserSessions>;
