import { and, desc, eq, gte, isNull, lt, or, sql } from "drizzle-orm";
import type {
  AccountStore,
  AuditEvent,
  AuditRecord,
  IdentityLink,
  LinkOutcome,
  MergeOutcome,
  RevokedSession,
  Role,
} from "../../domain/ports.js";
import { newRowId } from "../../domain/row-id.js";
import { errorCodes } from "../guard-port.js";
import { absorbedUserChanges, mergedRoles } from "../merge-rules.js";
import { sessionRefusals } from "../session-refusals.js";
import { type Database, rowsOf, type Transaction } from "./database.js";
import { auditEvents, passwordCredentials, roles, sessions, users, wechatIdentities } from "./schema.js";
import { asDate, toUserRecord, type UserRow, userColumns } from "./user-row.js";

const UNIQUE_VIOLATION = "23505";
/** FOR UPDATE NOWAIT found the row locked. */
const LOCK_NOT_AVAILABLE = "55P03";

/** A transaction or the database: both run the same statements. */
type Executor = Pick<Database, "execute" | "insert" | "update" | "select">;

const auditRow = (record: AuditRecord) => ({
  id: newRowId(),
  at: record.at,
  type: record.type,
  actor: record.actor,
  subjectUserId: record.subjectUserId,
  clientIp: record.ip,
  userAgent: record.userAgent,
  details: record.details,
});

/** AccountStore on Postgres (or PGlite): each change and its audit row in one transaction. */
export function createPgAccountStore(db: Database, options: { maxAccessTokenTtlMs: number }): AccountStore {
  const { revokedSession, staleSession } = sessionRefusals(options.maxAccessTokenTtlMs);

  /** Marks the access tokens of the live sessions of users matched by `whose` out of date. */
  async function markStale(
    tx: Executor,
    whose: ReturnType<typeof sql>,
    now: Date,
  ): Promise<RevokedSession[]> {
    const rows = rowsOf<{ id: string }>(
      await tx.execute(sql`
        update sessions set access_stale_before = ${now.toISOString()}::timestamptz
        where user_id in (${whose}) and revoked_at is null
          and idle_expires_at > ${now.toISOString()}::timestamptz
          and absolute_expires_at > ${now.toISOString()}::timestamptz
        returning id`),
    );
    return rows.map((r) => staleSession(r.id, now));
  }

  const userById = async (tx: Executor, userId: string) => {
    const [row] = rowsOf<UserRow>(
      await tx.execute(sql`select ${sql.raw(userColumns())} from users where id = ${userId}::uuid`),
    );
    return row;
  };

  /** Ends every session of the user that could still have a valid access token. */
  async function endSessionsOf(tx: Executor, userId: string, now: Date, reason: string) {
    const liveSince = new Date(now.getTime() - options.maxAccessTokenTtlMs);
    const ended = await tx
      .update(sessions)
      .set({ revokedAt: now, revokedReason: reason })
      .where(
        and(
          eq(sessions.userId, userId),
          isNull(sessions.revokedAt),
          sql`${sessions.idleExpiresAt} > ${liveSince.toISOString()}::timestamptz`,
        ),
      )
      .returning({ id: sessions.id });
    return ended.map((s) => revokedSession(s.id, now));
  }

  async function linkIn(tx: Transaction, userId: string, link: IdentityLink): Promise<LinkOutcome> {
    // Locks the user against a concurrent merge moving their identities meanwhile.
    const [user] = await tx
      .select({ unionid: users.unionid })
      .from(users)
      .where(eq(users.id, userId))
      .for("no key update");
    if (!user) return "no-user";
    switch (link.kind) {
      case "phone": {
        const [holder] = await tx
          .select({ id: users.id })
          .from(users)
          .where(eq(users.phoneNumber, link.phoneNumber));
        if (holder) return holder.id === userId ? "unchanged" : "conflict";
        await tx.update(users).set({ phoneNumber: link.phoneNumber }).where(eq(users.id, userId));
        return "linked";
      }
      case "password": {
        const [own] = await tx
          .select({ username: passwordCredentials.username })
          .from(passwordCredentials)
          .where(eq(passwordCredentials.userId, userId));
        if (own) return "conflict";
        const inserted = await tx
          .insert(passwordCredentials)
          .values({ userId, username: link.username, passwordHash: link.passwordHash })
          .onConflictDoNothing()
          .returning({ userId: passwordCredentials.userId });
        return inserted.length > 0 ? "linked" : "taken";
      }
      case "wechat": {
        const { identity } = link;
        const [held] = await tx
          .select({ userId: wechatIdentities.userId })
          .from(wechatIdentities)
          .where(
            and(eq(wechatIdentities.appId, identity.appId), eq(wechatIdentities.openid, identity.openid)),
          );
        if (held) return held.userId === userId ? "unchanged" : "conflict";
        if (identity.unionid !== null) {
          if (user.unionid !== null && user.unionid !== identity.unionid) return "conflict";
          const [other] = await tx
            .select({ id: users.id })
            .from(users)
            .where(eq(users.unionid, identity.unionid));
          if (other && other.id !== userId) return "conflict";
          await tx.update(users).set({ unionid: identity.unionid }).where(eq(users.id, userId));
        }
        await tx.insert(wechatIdentities).values({ ...identity, userId });
        return "linked";
      }
    }
  }

  async function merge(
    tx: Transaction,
    survivorId: string,
    absorbedId: string,
    now: Date,
    audit: AuditRecord,
  ): Promise<MergeOutcome> {
    // NOWAIT: a merge that would wait on another change of these users is refused (ABORTED)
    // rather than carried out on what that change leaves. NO KEY UPDATE does not conflict with
    // the key-share locks that logins' session inserts take on their user.
    const rows = rowsOf<UserRow>(
      await tx.execute(sql`
        select ${sql.raw(userColumns())} from users where id in (${survivorId}::uuid, ${absorbedId}::uuid)
        for no key update nowait`),
    ).map(toUserRecord);
    const survivor = rows.find((u) => u.id === survivorId);
    const absorbed = rows.find((u) => u.id === absorbedId);
    if (!survivor || !absorbed) return { merged: false, why: "not-found", detail: "no user has this id" };
    if (survivor.mergedInto !== null || absorbed.mergedInto !== null)
      return { merged: false, why: "busy", detail: "one of the users was merged already" };
    if (survivor.unionid !== null && absorbed.unionid !== null && survivor.unionid !== absorbed.unionid)
      return { merged: false, why: "conflict", detail: "the users have different unionids" };
    const credentials = await tx
      .select({ userId: passwordCredentials.userId })
      .from(passwordCredentials)
      .where(or(eq(passwordCredentials.userId, survivorId), eq(passwordCredentials.userId, absorbedId)));
    if (credentials.length > 1)
      return { merged: false, why: "conflict", detail: "both users have a username" };

    await tx
      .update(wechatIdentities)
      .set({ userId: survivorId })
      .where(eq(wechatIdentities.userId, absorbedId));
    await tx
      .update(passwordCredentials)
      .set({ userId: survivorId })
      .where(eq(passwordCredentials.userId, absorbedId));
    const roles = mergedRoles(survivor.roles, absorbed.roles);
    // The absorbed user's unique number and unionid are released before the survivor takes them.
    await tx
      .update(users)
      .set(absorbedUserChanges(survivorId, now, audit.actor))
      .where(eq(users.id, absorbedId));
    await tx
      .update(users)
      .set({
        roles,
        phoneNumber: survivor.phoneNumber ?? absorbed.phoneNumber,
        unionid: survivor.unionid ?? absorbed.unionid,
        nickname: survivor.nickname ?? absorbed.nickname,
        avatarUrl: survivor.avatarUrl ?? absorbed.avatarUrl,
      })
      .where(eq(users.id, survivorId));
    await tx.insert(auditEvents).values(auditRow(audit));
    const ended = await endSessionsOf(tx, absorbedId, now, "user_merged");
    const stale =
      roles.length > survivor.roles.length ? await markStale(tx, sql`select ${survivorId}::uuid`, now) : [];
    return { merged: true, refused: [...ended, ...stale] };
  }

  return {
    async seedRoles(seed: readonly Role[]) {
      if (seed.length === 0) return;
      await db
        .insert(roles)
        .values(seed.map((r) => ({ name: r.name, permissions: r.permissions })))
        .onConflictDoNothing();
    },

    async listRoles() {
      const rows = await db.select().from(roles).orderBy(roles.name);
      return rows.map((r) => ({ name: r.name, permissions: r.permissions }));
    },

    async setRolePermissions(role, now, audit) {
      return db.transaction(async (tx) => {
        await tx
          .insert(roles)
          .values({ name: role.name, permissions: role.permissions, updatedAt: now })
          .onConflictDoUpdate({ target: roles.name, set: { permissions: role.permissions, updatedAt: now } });
        await tx.insert(auditEvents).values(auditRow(audit));
        return markStale(tx, sql`select id from users where ${role.name}::text = any(roles)`, now);
      });
    },

    async setRoles(userId, newRoles, now, audit) {
      return db.transaction(async (tx) => {
        const updated = await tx
          .update(users)
          .set({ roles: newRoles })
          .where(eq(users.id, userId))
          .returning({ id: users.id });
        if (updated.length === 0) return null;
        await tx.insert(auditEvents).values(auditRow(audit));
        return markStale(tx, sql`select ${userId}::uuid`, now);
      });
    },

    async setDisabled(userId, disabled, now, audit) {
      return db.transaction(async (tx) => {
        const updated = await tx
          .update(users)
          .set(
            disabled
              ? { disabledAt: now, disabledBy: disabled.by, disabledReason: disabled.reason }
              : { disabledAt: null, disabledBy: null, disabledReason: null },
          )
          .where(eq(users.id, userId))
          .returning({ id: users.id });
        if (updated.length === 0) return null;
        await tx.insert(auditEvents).values(auditRow(audit));
        // Every session that could still have a valid access token, as a Logout with all_sessions.
        return disabled ? endSessionsOf(tx, userId, now, "user_disabled") : [];
      });
    },

    async createStaffAccount(account, audit) {
      try {
        await db.transaction(async (tx) => {
          await tx.insert(users).values({ id: account.userId, roles: account.roles, createdAt: account.now });
          await tx.insert(passwordCredentials).values({
            userId: account.userId,
            username: account.username,
            passwordHash: account.passwordHash,
            createdAt: account.now,
            updatedAt: account.now,
          });
          await tx.insert(auditEvents).values(auditRow(audit));
        });
        return true;
      } catch (err) {
        if (errorCodes(err).includes(UNIQUE_VIOLATION)) return false;
        throw err;
      }
    },

    async linkIdentity(userId, link, audit) {
      try {
        return await db.transaction(async (tx) => {
          const outcome = await linkIn(tx, userId, link);
          if (outcome === "linked") await tx.insert(auditEvents).values(auditRow(audit));
          return outcome;
        });
      } catch (err) {
        // Someone linked the same number, identity or username in between.
        if (errorCodes(err).includes(UNIQUE_VIOLATION))
          return link.kind === "password" ? "taken" : "conflict";
        throw err;
      }
    },

    async mergeUsers(survivorId, absorbedId, now, audit) {
      try {
        return await db.transaction((tx) => merge(tx, survivorId, absorbedId, now, audit));
      } catch (err) {
        if (errorCodes(err).includes(LOCK_NOT_AVAILABLE))
          return { merged: false, why: "busy", detail: "another change of one of these users is under way" };
        throw err;
      }
    },

    async findPasswordCredential(username) {
      const [row] = await db
        .select({ userId: passwordCredentials.userId, passwordHash: passwordCredentials.passwordHash })
        .from(passwordCredentials)
        .where(eq(passwordCredentials.username, username));
      return row ?? null;
    },

    async searchUsers(query) {
      const criteria = [
        query.userId !== undefined ? sql`u.id::text = ${query.userId}` : undefined,
        query.unionid !== undefined ? sql`u.unionid = ${query.unionid}` : undefined,
        query.phoneNumber !== undefined ? sql`u.phone_number = ${query.phoneNumber}` : undefined,
        query.openid !== undefined
          ? sql`u.id in (select user_id from wechat_identities where openid = ${query.openid})`
          : undefined,
        query.username !== undefined
          ? sql`u.id in (select user_id from password_credentials where username = ${query.username})`
          : undefined,
      ].filter((c) => c !== undefined);
      if (criteria.length === 0) return [];
      const rows = rowsOf<UserRow>(
        await db.execute(sql`
          select ${sql.raw(userColumns("u"))} from users u
          where ${sql.join(criteria, sql` and `)}
          order by u.created_at desc, u.id limit ${query.limit}`),
      );
      return rows.map(toUserRecord);
    },

    async getUser(userId) {
      const row = await userById(db, userId);
      if (!row) return null;
      const user = toUserRecord(row);
      const [wechat, credential, granted] = await Promise.all([
        db
          .select({
            appId: wechatIdentities.appId,
            openid: wechatIdentities.openid,
            unionid: wechatIdentities.unionid,
          })
          .from(wechatIdentities)
          .where(eq(wechatIdentities.userId, userId))
          .orderBy(wechatIdentities.createdAt),
        db
          .select({ username: passwordCredentials.username })
          .from(passwordCredentials)
          .where(eq(passwordCredentials.userId, userId)),
        db.execute(sql`
          select coalesce(array_agg(distinct g.permission order by g.permission), '{}') as permissions
          from roles r cross join unnest(r.permissions) as g(permission)
          where r.name = any(${sql.param(user.roles)}::text[])`),
      ]);
      return {
        user,
        wechat,
        username: credential[0]?.username ?? null,
        permissions: rowsOf<{ permissions: string[] }>(granted)[0]?.permissions ?? [],
      };
    },

    async recordAudit(events) {
      if (events.length > 0) await db.insert(auditEvents).values(events.map(auditRow));
    },

    async listAudit(query) {
      const rows = await db
        .select()
        .from(auditEvents)
        .where(
          and(
            query.subjectUserId !== undefined
              ? eq(auditEvents.subjectUserId, query.subjectUserId)
              : undefined,
            query.type !== undefined ? eq(auditEvents.type, query.type) : undefined,
            query.since !== undefined ? gte(auditEvents.at, query.since) : undefined,
            query.before !== undefined ? lt(auditEvents.at, query.before) : undefined,
            query.after !== undefined
              ? or(
                  lt(auditEvents.at, query.after.at),
                  and(eq(auditEvents.at, query.after.at), lt(auditEvents.id, query.after.id)),
                )
              : undefined,
          ),
        )
        .orderBy(desc(auditEvents.at), desc(auditEvents.id))
        .limit(query.limit);
      return rows.map(
        (r): AuditEvent => ({
          id: r.id,
          at: asDate(r.at),
          type: r.type,
          actor: r.actor,
          subjectUserId: r.subjectUserId,
          ip: r.clientIp,
          userAgent: r.userAgent,
          details: r.details,
        }),
      );
    },

    async purgeAudit(before, limit) {
      const result = await db.execute(sql`
        delete from ${auditEvents} where ${auditEvents.id} in (
          select ${auditEvents.id} from ${auditEvents} where ${auditEvents.at} < ${before.toISOString()}::timestamptz
          limit ${limit} for update skip locked
        ) returning ${auditEvents.id}`);
      return rowsOf(result).length;
    },
  };
}
