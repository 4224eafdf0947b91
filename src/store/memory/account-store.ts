import type {
  AccountStore,
  AuditEvent,
  AuditRecord,
  LinkOutcome,
  RevokedSession,
  UserRecord,
} from "../../domain/ports.js";
import { absorbedUserChanges, mergedRoles } from "../merge-rules.js";
import { sessionRefusals } from "../session-refusals.js";
import {
  appendAudit,
  grantedBy,
  identityKey,
  type MemoryDatabase,
  newMemoryUser,
  userWithPhone,
} from "./memory-database.js";

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

  /** Ends every session of the user that could still have a valid access token. */
  function endSessionsOf(userId: string, now: Date, reason: string): RevokedSession[] {
    const liveSince = now.getTime() - options.maxAccessTokenTtlMs;
    const ended: RevokedSession[] = [];
    for (const s of db.sessions.values()) {
      if (s.userId !== userId || s.revokedAt !== null || s.idleExpiresAt.getTime() <= liveSince) continue;
      s.revokedAt = now;
      s.revokedReason = reason;
      ended.push(revokedSession(s.id, now));
    }
    return ended;
  }

  const usernameOf = (userId: string) =>
    [...db.passwordCredentials].find(([, c]) => c.userId === userId)?.[0];

  function link(userId: string, link: Parameters<AccountStore["linkIdentity"]>[1]): LinkOutcome {
    const user = db.users.get(userId);
    if (!user) return "no-user";
    switch (link.kind) {
      case "phone": {
        const holder = userWithPhone(db, link.phoneNumber);
        if (holder) return holder.id === userId ? "unchanged" : "conflict";
        user.phoneNumber = link.phoneNumber;
        return "linked";
      }
      case "password": {
        if (usernameOf(userId) !== undefined) return "conflict";
        if (db.passwordCredentials.has(link.username)) return "taken";
        db.passwordCredentials.set(link.username, { userId, passwordHash: link.passwordHash });
        return "linked";
      }
      case "wechat": {
        const { identity } = link;
        const key = identityKey(identity.appId, identity.openid);
        const held = db.identities.get(key);
        if (held) return held.userId === userId ? "unchanged" : "conflict";
        if (identity.unionid !== null) {
          const other = [...db.users.values()].find((u) => u.unionid === identity.unionid);
          if ((other && other.id !== userId) || (user.unionid !== null && user.unionid !== identity.unionid))
            return "conflict";
          user.unionid = identity.unionid;
        }
        db.identities.set(key, { ...identity, userId });
        return "linked";
      }
    }
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
      return disabled ? endSessionsOf(userId, now, "user_disabled") : [];
    },

    async createStaffAccount(account, audit) {
      if (db.passwordCredentials.has(account.username)) return false;
      db.users.set(
        account.userId,
        newMemoryUser({ id: account.userId, roles: [...account.roles], createdAt: account.now }),
      );
      db.passwordCredentials.set(account.username, {
        userId: account.userId,
        passwordHash: account.passwordHash,
      });
      appendAudit(db, audit);
      return true;
    },

    async linkIdentity(userId, identityLink, audit: AuditRecord) {
      const outcome = link(userId, identityLink);
      if (outcome === "linked") appendAudit(db, audit);
      return outcome;
    },

    async mergeUsers(survivorId, absorbedId, now, audit) {
      const survivor = db.users.get(survivorId);
      const absorbed = db.users.get(absorbedId);
      if (!survivor || !absorbed) return { merged: false, why: "not-found", detail: "no user has this id" };
      if (survivor.mergedInto !== null || absorbed.mergedInto !== null)
        return { merged: false, why: "busy", detail: "one of the users was merged already" };
      if (survivor.unionid !== null && absorbed.unionid !== null && survivor.unionid !== absorbed.unionid)
        return { merged: false, why: "conflict", detail: "the users have different unionids" };
      const absorbedUsername = usernameOf(absorbedId);
      if (absorbedUsername !== undefined && usernameOf(survivorId) !== undefined)
        return { merged: false, why: "conflict", detail: "both users have a username" };

      for (const identity of db.identities.values())
        if (identity.userId === absorbedId) identity.userId = survivorId;
      if (absorbedUsername !== undefined)
        db.passwordCredentials.set(absorbedUsername, {
          ...(db.passwordCredentials.get(absorbedUsername) as { userId: string; passwordHash: string }),
          userId: survivorId,
        });
      survivor.phoneNumber ??= absorbed.phoneNumber;
      survivor.unionid ??= absorbed.unionid;
      survivor.nickname ??= absorbed.nickname;
      survivor.avatarUrl ??= absorbed.avatarUrl;
      const roles = mergedRoles(survivor.roles, absorbed.roles);
      const rolesGrew = roles.length > survivor.roles.length;
      survivor.roles = roles;
      Object.assign(absorbed, absorbedUserChanges(survivorId, now, audit.actor));
      appendAudit(db, audit);
      const ended = endSessionsOf(absorbedId, now, "user_merged");
      const stale = rolesGrew ? markStale(new Set([survivorId]), now) : [];
      return { merged: true, refused: [...ended, ...stale] };
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
