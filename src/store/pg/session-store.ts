import { randomUUID } from "node:crypto";
import { and, eq, gt, isNotNull, isNull, sql } from "drizzle-orm";
import type { SessionStart, SessionStore, StartedSession, WechatIdentity } from "../../domain/ports.js";
import { type Database, preparedStatement } from "./database.js";

/** A named value of a prepared statement. */
const p = sql.placeholder;

import { sessions, users, wechatIdentities } from "./schema.js";

/** A unique violation: two first logins of one person in two apps raced to create the user. */
const UNIQUE_VIOLATION = "23505";
/** Attempts of the login statement; each retry sees what the concurrent winner committed. */
const START_ATTEMPTS = 3;

interface StartRow {
  id: string;
  unionid: string | null;
  roles: string[];
  disabled_at: Date | string | null;
  created_at: Date | string;
  created: boolean;
  found_unionid: string | null;
  found: boolean;
}

const asDate = (value: Date | string) => (value instanceof Date ? value : new Date(value));

function hasCode(err: unknown, code: string): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if ((e as { code?: unknown }).code === code) return true;
  }
  return false;
}

export function createPgSessionStore(db: Database, options: { maxAccessTokenTtlMs: number }): SessionStore {
  /**
   * A login's whole write in one statement, so one round trip whether the user is new or not:
   * find the identity, or create it (linked to the person with this unionid if another app knows
   * them, else to a new user), then the session and its first refresh token unless the user is
   * disabled. The identity is inserted before its user so that a login which loses a race for
   * the identity (ON CONFLICT waits for the winner, then does nothing) creates nothing at all;
   * foreign keys are checked at the end of the statement. No row back means a lost race.
   */
  const startStatement = preparedStatement<StartRow>(
    db,
    "start_session",
    sql`
      with found as (
        select user_id, unionid from wechat_identities where app_id = ${p("appId")} and openid = ${p("openid")}
      ),
      same_person as (
        select id from users where ${p("unionid")}::text is not null and unionid = ${p("unionid")}::text
      ),
      new_identity as (
        insert into wechat_identities (app_id, openid, unionid, user_id)
        select ${p("appId")}, ${p("openid")}, ${p("unionid")}::text,
               coalesce((select id from same_person), ${p("newUserId")}::uuid)
        where not exists (select 1 from found)
        on conflict (app_id, openid) do nothing
        returning user_id
      ),
      new_user as (
        insert into users (id, unionid)
        select user_id, ${p("unionid")}::text from new_identity where user_id = ${p("newUserId")}::uuid
        returning id, unionid, roles, disabled_at, created_at
      ),
      the_user as (
        select u.id, u.unionid, u.roles, u.disabled_at, u.created_at
        from users u where u.id in (select user_id from found union all select user_id from new_identity)
        union all
        select * from new_user
      ),
      new_session as (
        insert into sessions (id, user_id, app_id, openid, created_at, idle_expires_at, absolute_expires_at,
                              client_ip, user_agent, device_id)
        select ${p("sessionId")}::uuid, id, ${p("appId")}, ${p("openid")}, ${p("createdAt")}::timestamptz,
               ${p("idleExpiresAt")}::timestamptz, ${p("absoluteExpiresAt")}::timestamptz,
               ${p("clientIp")}, ${p("userAgent")}, ${p("deviceId")}
        from the_user where disabled_at is null
        returning id
      ),
      first_token as (
        insert into refresh_tokens (token_hash, session_id, generation, created_at)
        select decode(${p("refreshTokenHash")}, 'hex'), id, 0, ${p("createdAt")}::timestamptz
        from new_session
      )
      select the_user.*,
             exists (select 1 from new_identity) as created,
             exists (select 1 from found) as found,
             (select unionid from found) as found_unionid
      from the_user`,
  );

  async function attemptStart(
    identity: WechatIdentity,
    session: SessionStart,
  ): Promise<StartRow | undefined> {
    const rows = await startStatement({
      appId: identity.appId,
      openid: identity.openid,
      unionid: identity.unionid,
      newUserId: randomUUID(),
      sessionId: session.id,
      createdAt: session.createdAt.toISOString(),
      idleExpiresAt: session.idleExpiresAt.toISOString(),
      absoluteExpiresAt: session.absoluteExpiresAt.toISOString(),
      clientIp: session.client.ip,
      userAgent: session.client.userAgent,
      deviceId: session.client.deviceId,
      refreshTokenHash: session.refreshTokenHash.toString("hex"),
    });
    return rows[0];
  }

  /** WeChat gives a unionid once the app is bound to an Open Platform account: record it (rare). */
  async function recordLateUnionid(identity: WechatIdentity & { unionid: string }, userId: string) {
    await db
      .update(wechatIdentities)
      .set({ unionid: identity.unionid })
      .where(and(eq(wechatIdentities.appId, identity.appId), eq(wechatIdentities.openid, identity.openid)));
    // The user gets it too unless someone else already holds it (no automatic merge of people).
    const updated = await db
      .update(users)
      .set({ unionid: identity.unionid })
      .where(and(eq(users.id, userId), isNull(users.unionid)))
      .returning({ unionid: users.unionid })
      .catch((err: unknown) => {
        if (hasCode(err, UNIQUE_VIOLATION)) return [];
        throw err;
      });
    return updated[0]?.unionid;
  }

  return {
    async start(identity, session): Promise<StartedSession> {
      for (let attempt = 1; ; attempt++) {
        let row: StartRow | undefined;
        try {
          row = await attemptStart(identity, session);
        } catch (err) {
          if (!(hasCode(err, UNIQUE_VIOLATION) && attempt < START_ATTEMPTS)) throw err;
        }
        if (row) {
          const user = {
            id: row.id,
            unionid: row.unionid,
            roles: row.roles,
            disabledAt: row.disabled_at === null ? null : asDate(row.disabled_at),
            createdAt: asDate(row.created_at),
          };
          let unionid = row.found ? row.found_unionid : identity.unionid;
          if (row.found && identity.unionid && identity.unionid !== unionid) {
            const userUnionid = await recordLateUnionid({ ...identity, unionid: identity.unionid }, user.id);
            if (userUnionid) user.unionid = userUnionid;
            unionid = identity.unionid;
          }
          return { user, unionid, created: row.created, sessionStored: user.disabledAt === null };
        }
        if (attempt >= START_ATTEMPTS)
          throw new Error(`the login statement lost its race ${START_ATTEMPTS} times`);
      }
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
