import { and, desc, eq, gt, isNotNull, isNull, lt, or, type SQL, sql } from "drizzle-orm";
import type {
  RefreshableSession,
  SessionStart,
  SessionStore,
  StartedSession,
  WechatIdentity,
} from "../../domain/ports.js";
import { newRowId } from "../../domain/row-id.js";
import { errorCodes } from "../guard-port.js";
import { sessionRefusals } from "../session-refusals.js";
import { type Database, preparedStatement, rowsOf, type Transaction } from "./database.js";

/** A named value of a prepared statement. */
const p = sql.placeholder;

/** What the roles in `rolesColumn` grant, from the roles table, sorted and without repeats. */
const grantedBy = (rolesColumn: string) =>
  sql.raw(`(select coalesce(array_agg(distinct g.permission order by g.permission), '{}')
            from roles r cross join unnest(r.permissions) as g(permission)
            where r.name = any(${rolesColumn}))`);

import { auditEvents, refreshTokens, sessions, users, wechatIdentities } from "./schema.js";
import { asDate, toUserRecord, type UserRow, userColumns } from "./user-row.js";

/** A unique violation: two first logins of one person in two apps raced to create the user. */
const UNIQUE_VIOLATION = "23505";
/** Attempts of the login statement; each retry sees what the concurrent winner committed. */
const START_ATTEMPTS = 3;

interface RotateRow {
  id: string;
  user_id: string;
  app_id: string;
  openid: string;
  unionid: string | null;
  roles: string[];
  permissions: string[];
  refresh_generation: number;
  revoked_at: Date | string | null;
  idle_expires_at: Date | string;
  absolute_expires_at: Date | string;
  user_disabled: boolean;
  token_generation: number;
  spent_at: Date | string | null;
  sealed_successor: string | null;
  rotated_generation: number | null;
  rotated_idle_expires_at: Date | string | null;
  too_late: boolean;
}

interface StartRow extends UserRow {
  created: boolean;
  found_unionid: string | null;
  found: boolean;
  permissions: string[];
}

/**
 * What every login statement ends with, after its `the_user` CTE: the session (unless the user is
 * disabled; a retried attempt's session id is left as it is), its first refresh token, and the
 * login.succeeded audit row. Named values: sessionId, appId, createdAt, idleExpiresAt,
 * absoluteExpiresAt, clientIp, userAgent, deviceId, refreshTokenHash, auditId (sessionParams).
 */
const loginSessionInserts = (openid: SQL, method: SQL) => sql`
      new_session as (
        insert into sessions (id, user_id, app_id, openid, created_at, idle_expires_at, absolute_expires_at,
                              client_ip, user_agent, device_id)
        select ${p("sessionId")}::uuid, id, ${p("appId")}, ${openid}, ${p("createdAt")}::timestamptz,
               ${p("idleExpiresAt")}::timestamptz, ${p("absoluteExpiresAt")}::timestamptz,
               ${p("clientIp")}, ${p("userAgent")}, ${p("deviceId")}
        from the_user where disabled_at is null
        on conflict (id) do nothing
        returning id
      ),
      first_token as (
        insert into refresh_tokens (token_hash, session_id, generation, created_at)
        select decode(${p("refreshTokenHash")}, 'hex'), id, 0, ${p("createdAt")}::timestamptz
        from new_session
      ),
      audit as (
        insert into audit_events (id, at, type, actor, subject_user_id, client_ip, user_agent, details)
        select ${p("auditId")}::uuid, ${p("createdAt")}::timestamptz, 'login.succeeded', the_user.id::text,
               the_user.id, ${p("clientIp")}, ${p("userAgent")},
               jsonb_build_object('method', ${method}, 'app_id', ${p("appId")}::text,
                                  'session_id', new_session.id)
        from new_session, the_user
      )`;

/** The named values of loginSessionInserts for a session. */
const sessionParams = (session: SessionStart) => ({
  auditId: newRowId(),
  sessionId: session.id,
  createdAt: session.createdAt.toISOString(),
  idleExpiresAt: session.idleExpiresAt.toISOString(),
  absoluteExpiresAt: session.absoluteExpiresAt.toISOString(),
  clientIp: session.client.ip,
  userAgent: session.client.userAgent,
  deviceId: session.client.deviceId,
  refreshTokenHash: session.refreshTokenHash.toString("hex"),
});

/** How often the offset between this process's clock and Postgres's is measured again. */
const CLOCK_OFFSET_INTERVAL_MS = 60_000;
/** A measurement whose round trip took longer is dropped: it says more about a queue than the clocks. */
const CLOCK_OFFSET_MAX_ROUND_TRIP_MS = 50;

/**
 * Postgres's clock minus this process's, measured now and every minute. A deadline handed to a
 * statement is converted to Postgres's clock with it: "time left" counted from when Postgres reads
 * the statement would start late for a statement that waited in postgres.js's pipeline behind
 * one stuck on a lock, and two machines' clocks may differ by more than a deadline.
 */
function watchDatabaseClock(db: Database) {
  let offsetMs = 0;
  const measure = async () => {
    const before = Date.now();
    const [row] = rowsOf<{ now_ms: number | string }>(
      await db.execute(sql`select extract(epoch from clock_timestamp()) * 1000 as now_ms`),
    );
    const after = Date.now();
    if (row && after - before <= CLOCK_OFFSET_MAX_ROUND_TRIP_MS)
      offsetMs = Number(row.now_ms) - (before + after) / 2;
  };
  const ignore = () => {}; // an outage: the last offset stays
  // Twice at first: the first round trip also opens a connection.
  measure().then(measure).catch(ignore);
  setInterval(() => measure().catch(ignore), CLOCK_OFFSET_INTERVAL_MS).unref();
  return { offsetMs: () => offsetMs };
}

const isUniqueViolation = (err: unknown) => errorCodes(err).includes(UNIQUE_VIOLATION);

export function createPgSessionStore(db: Database, options: { maxAccessTokenTtlMs: number }): SessionStore {
  const databaseClock = watchDatabaseClock(db);
  const { revokedSession, staleSession } = sessionRefusals(options.maxAccessTokenTtlMs);

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
        returning ${sql.raw(userColumns())}
      ),
      the_user as (
        select ${sql.raw(userColumns("u"))}
        -- One index lookup whatever the plan: the "in (... union all ...)" this replaces was planned
        -- as a scan of users once the table was two columns wider (bench:login, Postgres CPU a
        -- login 270-300 -> 610-620 us on 8,000 users, growing with the table).
        from users u where u.id = coalesce((select user_id from found), (select user_id from new_identity))
        union all
        select * from new_user
      ),
      ${loginSessionInserts(sql`${p("openid")}`, sql.raw("'wechat'"))}
      select the_user.*,
             exists (select 1 from new_identity) as created,
             exists (select 1 from found) as found,
             (select unionid from found) as found_unionid,
             ${grantedBy("the_user.roles")} as permissions
      from the_user`,
  );

  /**
   * The session of a user known by id (a password login; a phone login, in its transaction), in
   * one statement as a WeChat login's. Named values: userId, openid ("" for none), method, and
   * sessionParams.
   */
  const startForUserStatement = preparedStatement<UserRow & { permissions: string[] }>(
    db,
    "start_user_session",
    sql`
      with the_user as (
        select ${sql.raw(userColumns())} from users where id = ${p("userId")}::uuid
      ),
      ${loginSessionInserts(sql`${p("openid")}::text`, sql`${p("method")}::text`)}
      select the_user.*, ${grantedBy("the_user.roles")} as permissions from the_user`,
  );

  async function attemptStart(
    identity: WechatIdentity,
    session: SessionStart,
  ): Promise<StartRow | undefined> {
    const rows = await startStatement({
      appId: identity.appId,
      openid: identity.openid,
      unionid: identity.unionid,
      newUserId: newRowId(),
      ...sessionParams(session),
    });
    return rows[0];
  }

  /**
   * A refresh in one statement. The UPDATE of the session is the gate: its WHERE is re-checked on
   * the newest row version after any concurrent writer commits, so of parallel refreshes of one
   * token exactly one matches the old generation, and a revoke or expiry that commits first wins.
   */
  const rotateStatement = preparedStatement<RotateRow>(
    db,
    "rotate_refresh_token",
    sql`
      with presented as (
        select session_id, generation, spent_at, sealed_successor
        from refresh_tokens where token_hash = decode(${p("tokenHash")}, 'hex')
      ),
      current as (
        select s.id, s.user_id, s.app_id, s.openid, s.refresh_generation, s.revoked_at, s.idle_expires_at,
               s.absolute_expires_at, u.roles, ${grantedBy("u.roles")} as permissions,
               u.disabled_at is not null as user_disabled, i.unionid
        from sessions s
        join presented on presented.session_id = s.id
        join users u on u.id = s.user_id
        left join wechat_identities i on i.app_id = s.app_id and i.openid = s.openid
      ),
      rotated as (
        update sessions
        set refresh_generation = sessions.refresh_generation + 1,
            last_refreshed_at = ${p("now")}::timestamptz,
            idle_expires_at = least(${p("idleExpiresAt")}::timestamptz, sessions.absolute_expires_at)
        from presented, current
        where sessions.id = presented.session_id
          and sessions.refresh_generation = presented.generation
          and presented.spent_at is null
          and not current.user_disabled
          and sessions.revoked_at is null
          and sessions.idle_expires_at > ${p("now")}::timestamptz
          and sessions.absolute_expires_at > ${p("now")}::timestamptz
          -- Still within the caller's deadline (on Postgres's clock), evaluated after any wait on a
          -- lock, so a rotation the caller gave up on is not carried out behind its back.
          and (${p("deadline")}::timestamptz is null or clock_timestamp() < ${p("deadline")}::timestamptz)
        returning sessions.refresh_generation, sessions.idle_expires_at
      ),
      spent as (
        update refresh_tokens
        set spent_at = ${p("now")}::timestamptz, sealed_successor = ${p("sealedSuccessor")}::text
        where token_hash = decode(${p("tokenHash")}, 'hex') and exists (select 1 from rotated)
      ),
      successor as (
        insert into refresh_tokens (token_hash, session_id, generation, created_at)
        select decode(${p("successorHash")}, 'hex'), current.id, rotated.refresh_generation, ${p("now")}::timestamptz
        from rotated, current
      )
      select current.*, presented.generation as token_generation, presented.spent_at,
             presented.sealed_successor,
             rotated.refresh_generation as rotated_generation, rotated.idle_expires_at as rotated_idle_expires_at,
             coalesce(clock_timestamp() >= ${p("deadline")}::timestamptz, false) as too_late
      from presented
      join current on true
      left join rotated on true`,
  );

  async function attemptRotation(rotation: Parameters<SessionStore["rotateRefreshToken"]>[0]) {
    const [row] = await rotateStatement({
      tokenHash: rotation.tokenHash.toString("hex"),
      now: rotation.now.toISOString(),
      idleExpiresAt: rotation.successor.idleExpiresAt.toISOString(),
      sealedSuccessor: rotation.successor.sealedToken,
      successorHash: rotation.successor.tokenHash.toString("hex"),
      deadline:
        rotation.timeLeftMs === null
          ? null
          : rotation.timeLeftMs <= 0
            ? "-infinity"
            : new Date(Date.now() + rotation.timeLeftMs + databaseClock.offsetMs()).toISOString(),
    });
    if (!row) return { found: false } as const;
    const rotated = row.rotated_generation !== null;
    const session: RefreshableSession = {
      id: row.id,
      userId: row.user_id,
      appId: row.app_id,
      openid: row.openid,
      unionid: row.unionid,
      roles: row.roles,
      permissions: row.permissions,
      generation: rotated ? Number(row.rotated_generation) : Number(row.refresh_generation),
      revokedAt: row.revoked_at === null ? null : asDate(row.revoked_at),
      idleExpiresAt: asDate(rotated ? (row.rotated_idle_expires_at as Date | string) : row.idle_expires_at),
      absoluteExpiresAt: asDate(row.absolute_expires_at),
      userDisabled: row.user_disabled,
    };
    const token = {
      generation: Number(row.token_generation),
      spentAt: row.spent_at === null ? null : asDate(row.spent_at),
      sealedSuccessor: row.sealed_successor,
    };
    return { found: true, rotated, tooLate: !rotated && row.too_late, token, session } as const;
  }

  /**
   * Ends the session picked by id or by any of its refresh tokens, or with everySession every
   * live session of that session's user. Sessions idle-expired longer ago than an access token
   * lives are left alone: no token of theirs can still be valid.
   */
  const revokeStatement = preparedStatement<{ id: string; revoked_at: Date | string }>(
    db,
    "revoke_sessions",
    sql`
      with target as (
        select id, user_id, true as current from sessions
        where id = ${p("sessionId")}::uuid and (${p("userId")}::uuid is null or user_id = ${p("userId")}::uuid)
        union all
        select s.id, s.user_id,
               t.spent_at is null and s.revoked_at is null and s.idle_expires_at > ${p("now")}::timestamptz
                 and s.absolute_expires_at > ${p("now")}::timestamptz as current
        from refresh_tokens t join sessions s on s.id = t.session_id
        where t.token_hash = decode(${p("tokenHash")}::text, 'hex')
      ),
      victims as (
        select id from target
        union
        select s.id from sessions s
        where ${p("everySession")}::boolean and s.user_id in (select user_id from target where current)
          and s.revoked_at is null and s.idle_expires_at > ${p("liveSince")}::timestamptz
      ),
      ended as (
        update sessions set revoked_at = ${p("now")}::timestamptz, revoked_reason = ${p("reason")}
        where id in (select id from victims) and revoked_at is null
        returning id, user_id, revoked_at
      ),
      audit as (
        insert into audit_events (id, at, type, actor, subject_user_id, client_ip, user_agent, details)
        select ${p("auditId")}::uuid, ${p("now")}::timestamptz, ${p("auditType")}::text,
               coalesce(${p("auditActor")}::text, subject.user_id::text), subject.user_id,
               ${p("auditIp")}::text, ${p("auditUserAgent")}::text,
               ${p("auditDetails")}::jsonb || jsonb_build_object('reason', ${p("reason")}::text,
                 'sessions', (select count(*) from ended))
        from (select user_id from ended limit 1) as subject
        where ${p("auditType")}::text is not null
      )
      select id, revoked_at from ended`,
  );

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
        if (isUniqueViolation(err)) return [];
        throw err;
      });
    return updated[0]?.unionid;
  }

  /** Who the identity and the number (and, for a new identity, the unionid) belong to, in one row. */
  const phoneLookupStatement = preparedStatement<{
    identity_user: string | null;
    identity_unionid: string | null;
    phone_user: string | null;
    unionid_user: string | null;
  }>(
    db,
    "phone_login_lookup",
    sql`
      with identity as (
        select user_id, unionid from wechat_identities where app_id = ${p("appId")} and openid = ${p("openid")}
      )
      select (select user_id from identity) as identity_user,
             (select unionid from identity) as identity_unionid,
             (select id from users where phone_number = ${p("phoneNumber")}) as phone_user,
             (select id from users where ${p("unionid")}::text is not null and unionid = ${p("unionid")}::text
                and not exists (select 1 from identity)) as unionid_user`,
  );

  type PhoneLookup = Awaited<ReturnType<typeof phoneLookupStatement>>[number];

  /** The one user the lookup points at, null for none, or "conflict" for two. */
  function phoneLoginUser(found: PhoneLookup): string | null | "conflict" {
    const candidates = new Set(
      [found.identity_user, found.phone_user, found.unionid_user].filter((id) => id !== null),
    );
    if (candidates.size > 1) return "conflict";
    return [...candidates][0] ?? null;
  }

  /** The session of a phone login, once its user holds both the identity and the number. */
  async function phoneSession(
    userId: string,
    identity: WechatIdentity,
    session: SessionStart,
    outcome: { unionid: string | null; created: boolean },
    tx?: Transaction,
  ): Promise<StartedSession> {
    const [row] = await startForUserStatement(
      { userId, appId: identity.appId, openid: identity.openid, method: "phone", ...sessionParams(session) },
      tx,
    );
    const user = toUserRecord(row as UserRow);
    const permissions = (row as { permissions: string[] }).permissions;
    return { user, permissions, ...outcome, sessionStored: user.disabledAt === null };
  }

  /**
   * A phone login that has something to write, in a transaction: the identity and the number each
   * point at a user or at no one; a user created or a link added takes a unique index
   * (users.phone_number, wechat_identities' key), so of parallel phone logins of one person one
   * commits it and the others fail with a unique violation and start over (startWithPhone).
   */
  async function phoneLoginWithLinks(
    tx: Transaction,
    identity: WechatIdentity,
    phoneNumber: string,
    session: SessionStart,
  ): Promise<StartedSession | "conflict"> {
    const [found] = await phoneLookupStatement(
      { appId: identity.appId, openid: identity.openid, phoneNumber, unionid: identity.unionid },
      tx,
    );
    const known = phoneLoginUser(found as PhoneLookup);
    if (known === "conflict") return "conflict";
    const at = session.createdAt;
    const userId = known ?? newRowId();
    const linked = (kind: string) =>
      tx.insert(auditEvents).values({
        id: newRowId(),
        at,
        type: "identity.linked",
        actor: userId,
        subjectUserId: userId,
        clientIp: session.client.ip,
        userAgent: session.client.userAgent,
        details: { kind, app_id: identity.appId, by: "phone_login" },
      });
    if (known === null) {
      await tx.insert(users).values({ id: userId, unionid: identity.unionid, phoneNumber, createdAt: at });
    } else if (found?.phone_user === null) {
      await tx.update(users).set({ phoneNumber }).where(eq(users.id, userId));
      await linked("phone");
    }
    if (found?.identity_user === null) {
      await tx.insert(wechatIdentities).values({ ...identity, userId, createdAt: at });
      if (known !== null) await linked("wechat");
    }
    const unionid = found?.identity_user === null ? identity.unionid : (found?.identity_unionid ?? null);
    return phoneSession(userId, identity, session, { unionid, created: known === null }, tx);
  }

  return {
    async start(identity, session): Promise<StartedSession> {
      for (let attempt = 1; ; attempt++) {
        let row: StartRow | undefined;
        try {
          row = await attemptStart(identity, session);
        } catch (err) {
          if (!(isUniqueViolation(err) && attempt < START_ATTEMPTS)) throw err;
        }
        if (row) {
          const user = toUserRecord(row);
          let unionid = row.found ? row.found_unionid : identity.unionid;
          if (row.found && identity.unionid && identity.unionid !== unionid) {
            const userUnionid = await recordLateUnionid({ ...identity, unionid: identity.unionid }, user.id);
            if (userUnionid) user.unionid = userUnionid;
            unionid = identity.unionid;
          }
          return {
            user,
            permissions: row.permissions,
            unionid,
            created: row.created,
            sessionStored: user.disabledAt === null,
          };
        }
        if (attempt >= START_ATTEMPTS)
          throw new Error(`the login statement lost its race ${START_ATTEMPTS} times`);
      }
    },

    async startWithPhone(identity, phoneNumber, session) {
      // A returning user, whose identity and number are theirs already, needs no transaction: one
      // lookup and the session statement (measured in docs/benchmarks.md, "Ways in").
      const [found] = await phoneLookupStatement({
        appId: identity.appId,
        openid: identity.openid,
        phoneNumber,
        unionid: identity.unionid,
      });
      const known = phoneLoginUser(found as PhoneLookup);
      if (known === "conflict") return "conflict";
      if (known !== null && found?.identity_user === known && found.phone_user === known) {
        return phoneSession(known, identity, session, { unionid: found.identity_unionid, created: false });
      }
      for (let attempt = 1; ; attempt++) {
        try {
          return await db.transaction((tx) => phoneLoginWithLinks(tx, identity, phoneNumber, session));
        } catch (err) {
          // A parallel phone login of the same person created the user or the identity first:
          // the next attempt finds them.
          if (!(isUniqueViolation(err) && attempt < START_ATTEMPTS)) throw err;
        }
      }
    },

    async startForUser(userId, appId, session) {
      const [row] = await startForUserStatement({
        userId,
        appId,
        openid: "",
        method: "password",
        ...sessionParams(session),
      });
      if (!row) return null;
      const user = toUserRecord(row);
      return { user, permissions: row.permissions, sessionStored: user.disabledAt === null };
    },

    async rotateRefreshToken(rotation) {
      const first = await attemptRotation(rotation);
      // Not rotated although the snapshot showed the token unspent: either the session cannot be
      // refreshed, or a concurrent refresh or revoke committed in between. Look again at what it
      // left, so the caller judges the committed state (a failure path: one more statement).
      const unspentButNotRotated =
        first.found && !first.rotated && !first.tooLate && first.token.spentAt === null;
      return unspentButNotRotated ? attemptRotation(rotation) : first;
    },

    async revoke(target, { everySessionOfUser, reason, now, audit }) {
      const rows = await revokeStatement({
        sessionId: "sessionId" in target ? target.sessionId : null,
        userId: "sessionId" in target ? (target.userId ?? null) : null,
        tokenHash: "refreshTokenHash" in target ? target.refreshTokenHash.toString("hex") : null,
        everySession: everySessionOfUser,
        liveSince: new Date(now.getTime() - options.maxAccessTokenTtlMs).toISOString(),
        reason,
        now: now.toISOString(),
        auditId: newRowId(),
        auditType: audit?.type ?? null,
        auditActor: audit?.actor ?? null,
        auditIp: audit?.ip ?? "",
        auditUserAgent: audit?.userAgent ?? "",
        auditDetails: JSON.stringify(audit?.details ?? {}),
      });
      return rows.map((r) => revokedSession(r.id, asDate(r.revoked_at)));
    },

    async eraseSealedSuccessors(spentBefore) {
      const erased = await db
        .update(refreshTokens)
        .set({ sealedSuccessor: null })
        .where(and(isNotNull(refreshTokens.sealedSuccessor), lt(refreshTokens.spentAt, spentBefore)))
        .returning({ generation: refreshTokens.generation });
      return erased.length;
    },

    async purgeEndedSessions(endedBefore, limit) {
      // Two statements, each on its own index; the cascade takes the refresh tokens along.
      let purged = 0;
      for (const ended of [
        lt(sessions.absoluteExpiresAt, endedBefore),
        lt(sessions.revokedAt, endedBefore),
      ]) {
        if (purged >= limit) break;
        const result = await db.execute(sql`
          delete from ${sessions} where ${sessions.id} in (
            select ${sessions.id} from ${sessions} where ${ended}
            limit ${limit - purged} for update skip locked
          ) returning ${sessions.id}`);
        purged += rowsOf(result).length;
      }
      return purged;
    },

    async listLiveSessions(userId, now, limit) {
      const rows = await db
        .select()
        .from(sessions)
        .where(
          and(
            eq(sessions.userId, userId),
            isNull(sessions.revokedAt),
            gt(sessions.idleExpiresAt, now),
            gt(sessions.absoluteExpiresAt, now),
          ),
        )
        .orderBy(desc(sessions.createdAt), desc(sessions.id))
        .limit(limit);
      return rows.map((s) => ({
        id: s.id,
        appId: s.appId,
        createdAt: s.createdAt,
        lastRefreshedAt: s.lastRefreshedAt,
        client: { ip: s.clientIp, userAgent: s.userAgent, deviceId: s.deviceId },
      }));
    },

    async listRevokedSince(since) {
      // Two partial indexes, one for each kind; a session in both is listed as revoked.
      const rows = await db
        .select({ id: sessions.id, revokedAt: sessions.revokedAt, staleBefore: sessions.accessStaleBefore })
        .from(sessions)
        .where(or(gt(sessions.revokedAt, since), gt(sessions.accessStaleBefore, since)));
      return rows.map((r) =>
        r.revokedAt ? revokedSession(r.id, r.revokedAt) : staleSession(r.id, r.staleBefore as Date),
      );
    },
  };
}
