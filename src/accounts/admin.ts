import { validate as isUuid } from "uuid";
import { IdentityError, invalidArgument } from "../domain/errors.js";
import { ADMIN_PERMISSION, hasPermission } from "../domain/permissions.js";
import type {
  AccountStore,
  AuditEvent,
  AuditQuery,
  AuditRecord,
  Clock,
  LiveSession,
  SessionStore,
  UserDetails,
  UserQuery,
  UserRecord,
} from "../domain/ports.js";
import { newRowId } from "../domain/row-id.js";
import type { VerifyToken } from "../identity/verify-token.js";
import type { Revocations } from "../revocation/revocations.js";
import { newPasswordCredential, normalizeUsername, type PasswordHasher } from "./password-hasher.js";

/** Who calls: the administrator's access token, and where the call came from. */
export interface AdminCall {
  accessToken: string;
  /** The calling service's address, and its name under CALLERS ("" when callers are not checked). */
  callerAddress: string;
  caller: string;
}

export type UserWithSessions = UserDetails & { sessions: LiveSession[] };

/** Live sessions GetUser lists. */
const LISTED_SESSIONS = 100;

const userNotFound = () => new IdentityError("USER_NOT_FOUND", "no user has this id");

/** An audit page token: the last event's time and id. Opaque to clients. */
const pageToken = (event: AuditEvent) =>
  Buffer.from(JSON.stringify([event.at.getTime(), event.id])).toString("base64url");

function readPageToken(token: string): { at: Date; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as [unknown, unknown];
    if (typeof at === "number" && typeof id === "string" && isUuid(id)) return { at: new Date(at), id };
  } catch {
    // reported below
  }
  throw invalidArgument("page_token", "not a page token of this service");
}

/**
 * AdminService: every method first checks that the access token is valid (VerifyToken's rules,
 * revocation included) and that its permissions cover identity:admin; then does its work, which
 * the store writes with its audit row. Reads are audited as "admin.call".
 */
export function createAdmin(deps: {
  verifyToken: Pick<VerifyToken, "verify">;
  accounts: AccountStore;
  sessions: Pick<SessionStore, "listLiveSessions">;
  revocations: Pick<Revocations, "spread" | "revoke">;
  hasher: PasswordHasher;
  clock: Clock;
  passwordMinLength: number;
}) {
  /** The administrator behind a call, and the audit row's who and where. */
  function administrator(call: AdminCall, method: string) {
    const claims = deps.verifyToken.verify(call.accessToken);
    if (!hasPermission(claims.permissions, ADMIN_PERMISSION)) {
      throw new IdentityError(
        "PERMISSION_MISSING",
        `this access token's permissions do not include ${ADMIN_PERMISSION}`,
        { permission: ADMIN_PERMISSION },
      );
    }
    const now = new Date(deps.clock.now());
    const audit = (
      type: string,
      subjectUserId: string | null,
      details: Record<string, unknown> = {},
    ): AuditRecord => ({
      at: now,
      type,
      actor: claims.userId,
      subjectUserId,
      ip: call.callerAddress,
      userAgent: "",
      details: { method, ...(call.caller ? { caller: call.caller } : {}), ...details },
    });
    return { adminId: claims.userId, now, audit };
  }

  /** A user with every way in and their live sessions (the newest LISTED_SESSIONS). */
  async function withSessions(userId: string): Promise<UserWithSessions> {
    const details = await deps.accounts.getUser(userId);
    if (!details) throw userNotFound();
    const sessions = await deps.sessions.listLiveSessions(
      userId,
      new Date(deps.clock.now()),
      LISTED_SESSIONS,
    );
    return { ...details, sessions };
  }

  /** A read: its audit row has no change to go with. */
  async function read<T>(
    call: AdminCall,
    method: string,
    subjectUserId: string | null,
    work: () => Promise<T>,
  ): Promise<T> {
    const { audit } = administrator(call, method);
    const result = await work();
    await deps.accounts.recordAudit([audit("admin.call", subjectUserId)]);
    return result;
  }

  return {
    searchUsers(call: AdminCall, query: Omit<UserQuery, "limit"> & { limit: number }): Promise<UserRecord[]> {
      const normalized =
        query.username === undefined ? query : { ...query, username: normalizeUsername(query.username) };
      return read(call, "SearchUsers", null, () => deps.accounts.searchUsers(normalized));
    },

    getUser(call: AdminCall, userId: string): Promise<UserWithSessions> {
      return read(call, "GetUser", userId, () => withSessions(userId));
    },

    listRoles(call: AdminCall) {
      return read(call, "ListRoles", null, () => deps.accounts.listRoles());
    },

    async listAuditEvents(
      call: AdminCall,
      query: Omit<AuditQuery, "after"> & { pageToken: string },
    ): Promise<{ events: AuditEvent[]; nextPageToken: string }> {
      const after = query.pageToken ? readPageToken(query.pageToken) : undefined;
      if (query.subjectUserId !== undefined && !isUuid(query.subjectUserId))
        throw invalidArgument("user_id", "not a user id");
      return read(call, "ListAuditEvents", query.subjectUserId ?? null, async () => {
        const events = await deps.accounts.listAudit({ ...query, after });
        const last = events.at(-1);
        return { events, nextPageToken: last && events.length === query.limit ? pageToken(last) : "" };
      });
    },

    async createStaffAccount(
      call: AdminCall,
      account: { username: string; password: string; roles: string[] },
    ): Promise<UserDetails> {
      const { now, audit } = administrator(call, "CreateStaffAccount");
      return createStaffAccount(deps, { ...account, now }, (userId, username) =>
        audit("staff_account.created", userId, { username, roles: account.roles }),
      );
    },

    async setRoles(call: AdminCall, userId: string, roles: string[]): Promise<UserDetails> {
      const { now, audit } = administrator(call, "SetRoles");
      const unique = [...new Set(roles)].sort();
      const stale = await deps.accounts.setRoles(
        userId,
        unique,
        now,
        audit("roles.changed", userId, { roles: unique }),
      );
      if (stale === null) throw userNotFound();
      await deps.revocations.spread(stale);
      return (await deps.accounts.getUser(userId)) as UserDetails;
    },

    async setRolePermissions(call: AdminCall, role: string, permissions: string[]): Promise<void> {
      const { now, audit } = administrator(call, "SetRolePermissions");
      const unique = [...new Set(permissions)].sort();
      const stale = await deps.accounts.setRolePermissions(
        { name: role, permissions: unique },
        now,
        audit("role.permissions_changed", null, { role, permissions: unique }),
      );
      await deps.revocations.spread(stale);
    },

    async disableUser(call: AdminCall, userId: string, reason: string): Promise<{ sessionsEnded: number }> {
      const { adminId, now, audit } = administrator(call, "DisableUser");
      const ended = await deps.accounts.setDisabled(
        userId,
        { by: adminId, reason },
        now,
        audit("user.disabled", userId, { reason }),
      );
      if (ended === null) throw userNotFound();
      return { sessionsEnded: await deps.revocations.spread(ended) };
    },

    async enableUser(call: AdminCall, userId: string): Promise<void> {
      const { now, audit } = administrator(call, "EnableUser");
      if ((await deps.accounts.setDisabled(userId, null, now, audit("user.enabled", userId))) === null)
        throw userNotFound();
    },

    /**
     * Moves every way in of `absorbedId` to `survivorId`, ends the absorbed user's sessions and
     * disables it (marked merged); see AccountStore.mergeUsers.
     */
    async mergeUsers(
      call: AdminCall,
      merge: { survivorId: string; absorbedId: string; reason: string },
    ): Promise<{ user: UserWithSessions; sessionsEnded: number }> {
      const { now, audit } = administrator(call, "MergeUsers");
      if (merge.survivorId === merge.absorbedId)
        throw invalidArgument("absorbed_user_id", "a user cannot be merged into itself");
      const outcome = await deps.accounts.mergeUsers(
        merge.survivorId,
        merge.absorbedId,
        now,
        audit("users.merged", merge.survivorId, { absorbed_user_id: merge.absorbedId, reason: merge.reason }),
      );
      if (!outcome.merged) {
        if (outcome.why === "not-found") throw userNotFound();
        throw new IdentityError(
          outcome.why === "busy" ? "MERGE_CONFLICT" : "ACCOUNT_CONFLICT",
          outcome.detail,
        );
      }
      await deps.revocations.spread(outcome.refused);
      return {
        user: await withSessions(merge.survivorId),
        sessionsEnded: outcome.refused.filter((s) => s.staleBefore === undefined).length,
      };
    },

    async endUserSessions(
      call: AdminCall,
      userId: string,
      sessionId: string,
    ): Promise<{ sessionsEnded: number }> {
      const { adminId, audit } = administrator(call, "EndUserSessions");
      const note = audit("sessions.ended_by_admin", userId);
      const options = {
        reason: "ended_by_admin",
        audit: { type: note.type, actor: adminId, ip: note.ip, userAgent: "", details: note.details },
      };
      if (sessionId !== "") {
        if (!isUuid(sessionId)) return { sessionsEnded: 0 };
        const ended = await deps.revocations.revoke(
          { sessionId, userId },
          { ...options, everySessionOfUser: false },
        );
        return { sessionsEnded: ended };
      }
      // Every live session: the user's sessions, found through their newest.
      let sessionsEnded = 0;
      // One round ends them all; a few more catch sessions started meanwhile.
      for (let round = 0; round < 10; round++) {
        const live = await deps.sessions.listLiveSessions(userId, new Date(deps.clock.now()), 1);
        const first = live[0];
        if (!first) return { sessionsEnded };
        sessionsEnded += await deps.revocations.revoke(
          { sessionId: first.id, userId },
          { ...options, everySessionOfUser: true },
        );
      }
      return { sessionsEnded };
    },
  };
}

export type Admin = ReturnType<typeof createAdmin>;

/**
 * A new staff account (username lowercased, password hashed with argon2id): AdminService's
 * CreateStaffAccount and the `admin:create` command both make accounts here.
 */
export async function createStaffAccount(
  deps: { accounts: AccountStore; hasher: PasswordHasher; passwordMinLength: number },
  account: { username: string; password: string; roles: string[]; now: Date },
  audit: (userId: string, username: string) => AuditRecord,
): Promise<UserDetails> {
  const { username, passwordHash } = await newPasswordCredential(deps, account.username, account.password);
  const userId = newRowId();
  const created = await deps.accounts.createStaffAccount(
    {
      userId,
      username,
      passwordHash,
      roles: [...new Set(account.roles)].sort(),
      now: account.now,
    },
    audit(userId, username),
  );
  if (!created) throw new IdentityError("USERNAME_TAKEN", "a staff account already has this username");
  return (await deps.accounts.getUser(userId)) as UserDetails;
}
