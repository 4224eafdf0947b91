import type { AccountStore, AuditEvent, RevokedSession, UserRecord } from "../../domain/ports.js";
import { sessionRefusals } from "../session-refusals.js";
import { appendAudit, grantedBy, type MemoryDatabase } from "./memory-database.js";

/** AccountStore on the in-memory tables, with the Postgres store's semantics (one contract suite). */
export function createMemoryAccountStore(
  db: MemoryDatabase,
  options: { maxAccessTokenTtlMs: number },
): AccountStore {
  const { revokedSession, staleSession } = sessionRefusals(options.maxAccessTokenTtlMs);
  const copy = (user: UserRecord): UserRecord => ({ ...user, roles: [...user.roles] });

  function markStale(userIds: ReadonlySet<string>, now: Date): RevokedSession[] {
    const marked: RevokedSession[] = [];
    for (const s of db.sessions.values()) {
      if (!userIds.has(s.userId) || s.revokedAt !== null) continue;
      if (s.idleExpiresAt <= now || s.absoluteExpiresAt <= now) continue;
      s.accessStaleBefore = now;
      marked.push(staleSession(s.id, now));
    }
    return marked;
  }

  const byNewest = (a: UserRecord, b: UserRecord) =>
    b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? -1 : 1);

  return {
    async seedRoles(seed) {
      for (const role of seed) if (!db.roles.has(role.name)) db.roles.set(role.name, [...role.permissions]);
    },

    async listRoles() {
      return [...db.roles]
        .map(([name, permissions]) => ({ name, permissions: [...permissions] }))
        .sort((a, b) => (a.name < b.name ? -1 : 1));
    },

    async setRolePermissions(role, now, audit) {
      db.roles.set(role.name, [...role.permissions]);
      appendAudit(db, audit);
      const holders = [...db.users.values()].filter((u) => u.roles.includes(role.name)).map((u) => u.id);
      return markStale(new Set(holders), now);
    },

    async setRoles(userId, roles, now, audit) {
      const user = db.users.get(userId);
      if (!user) return null;
      user.roles = [...roles];
      appendAudit(db, audit);
      return markStale(new Set([userId]), now);
    },

    async setDisabled(userId, disabled, now, audit) {
      const user = db.users.get(userId);
      if (!user) return null;
      user.disabledAt = disabled ? now : null;
      user.disabledBy = disabled?.by ?? null;
      user.disabledReason = disabled?.reason ?? null;
      appendAudit(db, audit);
      if (!disabled) return [];
      const liveSince = now.getTime() - options.maxAccessTokenTtlMs;
      const ended: RevokedSession[] = [];
      for (const s of db.sessions.values()) {
        if (s.userId !== userId || s.revokedAt !== null || s.idleExpiresAt.getTime() <= liveSince) continue;
        s.revokedAt = now;
        s.revokedReason = "user_disabled";
        ended.push(revokedSession(s.id, now));
      }
      return ended;
    },

    async createStaffAccount(account, audit) {
      if (db.passwordCredentials.has(account.username)) return false;
      db.users.set(account.userId, {
        id: account.userId,
        unionid: null,
        roles: [...account.roles],
        phoneNumber: null,
        nickname: null,
        avatarUrl: null,
        disabledAt: null,
        disabledBy: null,
        disabledReason: null,
        createdAt: account.now,
      });
      db.passwordCredentials.set(account.username, {
        userId: account.userId,
        passwordHash: account.passwordHash,
      });
      appendAudit(db, audit);
      return true;
    },

    async findPasswordCredential(username) {
      const credential = db.passwordCredentials.get(username);
      return credential ? { ...credential } : null;
    },

    async searchUsers(query) {
      const openidUsers = new Set(
        [...db.identities.values()].filter((i) => i.openid === query.openid).map((i) => i.userId),
      );
      const usernameUser =
        query.username === undefined ? undefined : db.passwordCredentials.get(query.username);
      const criteria = [
        query.userId !== undefined ? (u: UserRecord) => u.id === query.userId : undefined,
        query.unionid !== undefined ? (u: UserRecord) => u.unionid === query.unionid : undefined,
        query.phoneNumber !== undefined ? (u: UserRecord) => u.phoneNumber === query.phoneNumber : undefined,
        query.openid !== undefined ? (u: UserRecord) => openidUsers.has(u.id) : undefined,
        query.username !== undefined ? (u: UserRecord) => u.id === usernameUser?.userId : undefined,
      ].filter((c) => c !== undefined);
      if (criteria.length === 0) return [];
      return [...db.users.values()]
        .filter((u) => criteria.every((matches) => matches(u)))
        .sort(byNewest)
        .slice(0, query.limit)
        .map(copy);
    },

    async getUser(userId) {
      const user = db.users.get(userId);
      if (!user) return null;
      const username = [...db.passwordCredentials].find(([, c]) => c.userId === userId)?.[0] ?? null;
      return {
        user: copy(user),
        permissions: grantedBy(db, user.roles),
        wechat: [...db.identities.values()]
          .filter((i) => i.userId === userId)
          .map(({ appId, openid, unionid }) => ({ appId, openid, unionid })),
        username,
      };
    },

    async recordAudit(events) {
      for (const event of events) appendAudit(db, event);
    },

    async listAudit(query) {
      const { after } = query;
      const newestFirst = (a: AuditEvent, b: AuditEvent) =>
        b.at.getTime() - a.at.getTime() || (a.id < b.id ? 1 : -1);
      return db.auditEvents
        .filter(
          (e) =>
            (query.subjectUserId === undefined || e.subjectUserId === query.subjectUserId) &&
            (query.type === undefined || e.type === query.type) &&
            (query.since === undefined || e.at >= query.since) &&
            (query.before === undefined || e.at < query.before) &&
            (after === undefined ||
              e.at.getTime() < after.at.getTime() ||
              (e.at.getTime() === after.at.getTime() && e.id < after.id)),
        )
        .sort(newestFirst)
        .slice(0, query.limit)
        .map((e) => ({ ...e, details: { ...e.details } }));
    },

    async purgeAudit(before, limit) {
      let purged = 0;
      db.auditEvents = db.auditEvents.filter((e) => {
        if (purged >= limit || e.at >= before) return true;
        purged++;
        return false;
      });
      return purged;
    },
  };
}
