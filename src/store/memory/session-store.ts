import type {
  RefreshableSession,
  RevokedSession,
  SessionStart,
  SessionStore,
  UserRecord,
} from "../../domain/ports.js";
import { newRowId } from "../../domain/row-id.js";
import { sessionRefusals } from "../session-refusals.js";
import {
  appendAudit,
  grantedBy,
  identityKey,
  type MemoryDatabase,
  type MemorySession,
  type MemoryUser,
  newMemoryUser,
  userWithPhone,
} from "./memory-database.js";

/**
 * SessionStore on Maps, with the Postgres store's semantics (test/contract runs both through one
 * suite). Each method does its whole work without awaiting, so it is as atomic as the Postgres
 * store's single statements.
 */
export function createMemorySessionStore(
  db: MemoryDatabase,
  options: { maxAccessTokenTtlMs: number },
): SessionStore {
  const refusals = sessionRefusals(options.maxAccessTokenTtlMs);
  const revokedSession = (session: MemorySession): RevokedSession =>
    refusals.revokedSession(session.id, session.revokedAt as Date);
  const userRecord = (user: MemoryUser): UserRecord => ({ ...user, roles: [...user.roles] });

  function refreshable(session: MemorySession): RefreshableSession {
    const user = db.users.get(session.userId) as MemoryUser;
    return {
      id: session.id,
      userId: session.userId,
      appId: session.appId,
      openid: session.openid,
      unionid: db.identities.get(identityKey(session.appId, session.openid))?.unionid ?? null,
      roles: [...user.roles],
      permissions: grantedBy(db, user.roles),
      generation: session.refreshGeneration,
      revokedAt: session.revokedAt,
      idleExpiresAt: session.idleExpiresAt,
      absoluteExpiresAt: session.absoluteExpiresAt,
      userDisabled: user.disabledAt !== null,
    };
  }

  /** Stores a login's session and first refresh token, with its audit row; false for a disabled user. */
  function storeSession(
    user: MemoryUser,
    appId: string,
    openid: string,
    session: SessionStart,
    method: string,
  ): boolean {
    if (user.disabledAt !== null) return false;
    if (db.sessions.has(session.id)) return true;
    db.sessions.set(session.id, {
      id: session.id,
      userId: user.id,
      appId,
      openid,
      createdAt: session.createdAt,
      idleExpiresAt: session.idleExpiresAt,
      absoluteExpiresAt: session.absoluteExpiresAt,
      lastRefreshedAt: null,
      clientIp: session.client.ip,
      userAgent: session.client.userAgent,
      deviceId: session.client.deviceId,
      refreshGeneration: 0,
      revokedAt: null,
      revokedReason: null,
      accessStaleBefore: null,
    });
    db.refreshTokens.set(session.refreshTokenHash.toString("hex"), {
      tokenHash: session.refreshTokenHash,
      sessionId: session.id,
      generation: 0,
      createdAt: session.createdAt,
      spentAt: null,
      sealedSuccessor: null,
    });
    appendAudit(db, {
      at: session.createdAt,
      type: "login.succeeded",
      actor: user.id,
      subjectUserId: user.id,
      ip: session.client.ip,
      userAgent: session.client.userAgent,
      details: { method, app_id: appId, session_id: session.id },
    });
    return true;
  }

  return {
    async start(identity, session) {
      const key = identityKey(identity.appId, identity.openid);
      const found = db.identities.get(key);
      let user: MemoryUser;
      let unionid = identity.unionid;
      if (found) {
        user = db.users.get(found.userId) as MemoryUser;
        if (identity.unionid && identity.unionid !== found.unionid) {
          // A unionid that appears on a later login: the identity records it, and the user too
          // unless someone else already holds it (no automatic merge of people).
          found.unionid = identity.unionid;
          const taken = [...db.users.values()].some((u) => u.unionid === identity.unionid);
          if (user.unionid === null && !taken) user.unionid = identity.unionid;
        } else {
          unionid = found.unionid;
        }
      } else {
        const samePerson = identity.unionid
          ? [...db.users.values()].find((u) => u.unionid === identity.unionid)
          : undefined;
        user =
          samePerson ?? newMemoryUser({ id: newRowId(), unionid: identity.unionid, createdAt: new Date() });
        db.users.set(user.id, user);
        db.identities.set(key, { ...identity, userId: user.id });
      }
      const sessionStored = storeSession(user, identity.appId, identity.openid, session, "wechat");
      return {
        user: userRecord(user),
        permissions: grantedBy(db, user.roles),
        unionid,
        created: !found,
        sessionStored,
      };
    },

    async startWithPhone(identity, phoneNumber, session) {
      const key = identityKey(identity.appId, identity.openid);
      const byIdentity = db.identities.get(key);
      const byPhone = userWithPhone(db, phoneNumber);
      const byUnionid =
        byIdentity || !identity.unionid
          ? undefined
          : [...db.users.values()].find((u) => u.unionid === identity.unionid);
      const candidates = new Set(
        [byIdentity?.userId, byPhone?.id, byUnionid?.id].filter((id) => id !== undefined),
      );
      if (candidates.size > 1) return "conflict";
      const [known] = candidates;
      const created = known === undefined;
      const user = created
        ? newMemoryUser({
            id: newRowId(),
            unionid: identity.unionid,
            phoneNumber,
            createdAt: session.createdAt,
          })
        : (db.users.get(known) as MemoryUser);
      if (created) db.users.set(user.id, user);
      const linked = (kind: string) =>
        appendAudit(db, {
          at: session.createdAt,
          type: "identity.linked",
          actor: user.id,
          subjectUserId: user.id,
          ip: session.client.ip,
          userAgent: session.client.userAgent,
          details: { kind, app_id: identity.appId, by: "phone_login" },
        });
      if (!created && user.phoneNumber !== phoneNumber) {
        user.phoneNumber = phoneNumber;
        linked("phone");
      }
      if (!byIdentity) {
        db.identities.set(key, { ...identity, userId: user.id });
        if (!created) linked("wechat");
      }
      const sessionStored = storeSession(user, identity.appId, identity.openid, session, "phone");
      return {
        user: userRecord(user),
        permissions: grantedBy(db, user.roles),
        unionid: byIdentity?.unionid ?? identity.unionid,
        created,
        sessionStored,
      };
    },

    async startForUser(userId, appId, session) {
      const user = db.users.get(userId);
      if (!user) return null;
      const sessionStored = storeSession(user, appId, "", session, "password");
      return { user: userRecord(user), permissions: grantedBy(db, user.roles), sessionStored };
    },

    async rotateRefreshToken({ tokenHash, now, successor, timeLeftMs }) {
      const presented = db.refreshTokens.get(tokenHash.toString("hex"));
      if (!presented) return { found: false };
      const session = db.sessions.get(presented.sessionId) as MemorySession;
      // As the Postgres statement reports it: the presented token as it was before this call.
      const token = {
        generation: presented.generation,
        spentAt: presented.spentAt,
        sealedSuccessor: presented.sealedSuccessor,
      };
      const before = refreshable(session);
      // Nothing waits here: only a deadline already past is too late.
      const tooLate = timeLeftMs !== null && timeLeftMs <= 0;
      const rotated =
        !tooLate &&
        session.refreshGeneration === presented.generation &&
        presented.spentAt === null &&
        !before.userDisabled &&
        session.revokedAt === null &&
        session.idleExpiresAt > now &&
        session.absoluteExpiresAt > now;
      if (!rotated) return { found: true, rotated, tooLate, token, session: before };
      session.refreshGeneration++;
      session.lastRefreshedAt = now;
      session.idleExpiresAt = new Date(
        Math.min(successor.idleExpiresAt.getTime(), session.absoluteExpiresAt.getTime()),
      );
      presented.spentAt = now;
      presented.sealedSuccessor = successor.sealedToken;
      db.refreshTokens.set(successor.tokenHash.toString("hex"), {
        tokenHash: successor.tokenHash,
        sessionId: session.id,
        generation: session.refreshGeneration,
        createdAt: now,
        spentAt: null,
        sealedSuccessor: null,
      });
      return { found: true, rotated, tooLate, token, session: refreshable(session) };
    },

    async revoke(target, { everySessionOfUser, reason, now, audit }) {
      const targeted =
        "sessionId" in target
          ? db.sessions.get(target.sessionId)
          : db.sessions.get(db.refreshTokens.get(target.refreshTokenHash.toString("hex"))?.sessionId ?? "");
      if (
        !targeted ||
        ("userId" in target && target.userId !== undefined && targeted.userId !== target.userId)
      )
        return [];
      const victims = [targeted];
      // A refresh token names every session of its user only while it is the live session's newest.
      const presented =
        "refreshTokenHash" in target
          ? db.refreshTokens.get(target.refreshTokenHash.toString("hex"))
          : undefined;
      const current =
        presented === undefined ||
        (presented.spentAt === null &&
          targeted.revokedAt === null &&
          targeted.idleExpiresAt > now &&
          targeted.absoluteExpiresAt > now);
      if (everySessionOfUser && current) {
        // Sessions idle-expired longer ago than an access token lives have no valid token left.
        const liveSince = now.getTime() - options.maxAccessTokenTtlMs;
        for (const s of db.sessions.values()) {
          if (s.userId === targeted.userId && s.revokedAt === null && s.idleExpiresAt.getTime() > liveSince)
            victims.push(s);
        }
      }
      const ended: RevokedSession[] = [];
      for (const session of new Set(victims)) {
        if (session.revokedAt !== null) continue;
        session.revokedAt = now;
        session.revokedReason = reason;
        ended.push(revokedSession(session));
      }
      if (audit && ended.length > 0) {
        appendAudit(db, {
          at: now,
          type: audit.type,
          actor: audit.actor ?? targeted.userId,
          subjectUserId: targeted.userId,
          ip: audit.ip,
          userAgent: audit.userAgent,
          details: { ...audit.details, reason, sessions: ended.length },
        });
      }
      return ended;
    },

    async eraseSealedSuccessors(spentBefore) {
      let erased = 0;
      for (const token of db.refreshTokens.values()) {
        if (token.sealedSuccessor !== null && token.spentAt !== null && token.spentAt < spentBefore) {
          token.sealedSuccessor = null;
          erased++;
        }
      }
      return erased;
    },

    async purgeEndedSessions(endedBefore, limit) {
      const purged = new Set<string>();
      for (const session of db.sessions.values()) {
        if (purged.size >= limit) break;
        const ended =
          session.absoluteExpiresAt < endedBefore ||
          (session.revokedAt !== null && session.revokedAt < endedBefore);
        if (ended) purged.add(session.id);
      }
      for (const id of purged) db.sessions.delete(id);
      for (const [key, token] of db.refreshTokens)
        if (purged.has(token.sessionId)) db.refreshTokens.delete(key);
      return purged.size;
    },

    async listLiveSessions(userId, now, limit) {
      return [...db.sessions.values()]
        .filter(
          (s) =>
            s.userId === userId && s.revokedAt === null && s.idleExpiresAt > now && s.absoluteExpiresAt > now,
        )
        .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1))
        .slice(0, limit)
        .map((s) => ({
          id: s.id,
          appId: s.appId,
          createdAt: s.createdAt,
          lastRefreshedAt: s.lastRefreshedAt,
          client: { ip: s.clientIp, userAgent: s.userAgent, deviceId: s.deviceId },
        }));
    },

    async listRevokedSince(since) {
      const listed: RevokedSession[] = [];
      for (const s of db.sessions.values()) {
        if (s.revokedAt !== null) {
          if (s.revokedAt > since) listed.push(revokedSession(s));
        } else if (s.accessStaleBefore !== null && s.accessStaleBefore > since) {
          listed.push(refusals.staleSession(s.id, s.accessStaleBefore));
        }
      }
      return listed;
    },
  };
}
