import { and, gt, isNotNull, sql } from "drizzle-orm";
import type { SessionStore } from "../../domain/ports.js";
import type { Database } from "./database.js";
import { refreshTokens, sessions } from "./schema.js";

export function createPgSessionStore(db: Database, options: { maxAccessTokenTtlMs: number }): SessionStore {
  return {
    async create(session) {
      // One round trip: the session and its first refresh token (generation 0) in one statement.
      await db.execute(sql`
        with inserted as (
          insert into ${sessions} (id, user_id, app_id, openid, created_at, idle_expires_at,
                                   absolute_expires_at, client_ip, user_agent, device_id)
          values (${session.id}, ${session.userId}, ${session.appId}, ${session.openid},
                  ${session.createdAt.toISOString()}::timestamptz, ${session.idleExpiresAt.toISOString()}::timestamptz,
                  ${session.absoluteExpiresAt.toISOString()}::timestamptz, ${session.client.ip},
                  ${session.client.userAgent}, ${session.client.deviceId})
          returning id
        )
        insert into ${refreshTokens} (token_hash, session_id, generation, created_at)
        select decode(${session.refreshTokenHash.toString("hex")}, 'hex'), inserted.id, 0, ${session.createdAt.toISOString()}::timestamptz
        from inserted`);
    },
    async listRevokedSince(since) {
      const rows = await db
        .select({ id: sessions.id, revokedAt: sessions.revokedAt })
        .from(sessions)
        .where(and(isNotNull(sessions.revokedAt), gt(sessions.revokedAt, since)));
      return rows.map((r) => ({
        id: r.id,
        forgetAfter: new Date((r.revokedAt as Date).getTime() + options.maxAccessTokenTtlMs),
      }));
    },
  };
}
