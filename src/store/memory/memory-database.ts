import type { AuditEvent, AuditRecord, UserRecord } from "../../domain/ports.js";
import { newRowId } from "../../domain/row-id.js";

/**
 * The tables of the Postgres schema as Maps, for the in-memory SessionStore and UserStore: fast
 * tests of the use cases, and the same contract suites as the Postgres stores. Not a production
 * backend: nothing is kept, and one process is one instance.
 */

/** A user row: what the SessionStore hands out as a UserRecord. */
export type MemoryUser = UserRecord;

export interface MemoryIdentity {
  appId: string;
  openid: string;
  unionid: string | null;
  userId: string;
}

export interface MemorySession {
  id: string;
  userId: string;
  appId: string;
  openid: string;
  createdAt: Date;
  idleExpiresAt: Date;
  absoluteExpiresAt: Date;
  lastRefreshedAt: Date | null;
  clientIp: string;
  userAgent: string;
  deviceId: string;
  refreshGeneration: number;
  revokedAt: Date | null;
  revokedReason: string | null;
  accessStaleBefore: Date | null;
}

export interface MemoryRefreshToken {
  tokenHash: Buffer;
  sessionId: string;
  generation: number;
  createdAt: Date;
  spentAt: Date | null;
  sealedSuccessor: string | null;
}

export interface MemoryDatabase {
  users: Map<string, MemoryUser>;
  /** Role name -> permissions. */
  roles: Map<string, string[]>;
  /** Keyed by username (lowercased). */
  passwordCredentials: Map<string, { userId: string; passwordHash: string }>;
  /** In the order written. */
  auditEvents: AuditEvent[];
  /** Keyed by identityKey(appId, openid). */
  identities: Map<string, MemoryIdentity>;
  sessions: Map<string, MemorySession>;
  /** Keyed by the token hash in hex. */
  refreshTokens: Map<string, MemoryRefreshToken>;
}

export const identityKey = (appId: string, openid: string) => `${appId}\u0000${openid}`;

export function createMemoryDatabase(): MemoryDatabase {
  return {
    users: new Map(),
    roles: new Map(),
    passwordCredentials: new Map(),
    auditEvents: [],
    identities: new Map(),
    sessions: new Map(),
    refreshTokens: new Map(),
  };
}

/** What a user's roles grant, as the Postgres statements compute it: sorted, without repeats. */
export function grantedBy(db: MemoryDatabase, roles: readonly string[]): string[] {
  return [...new Set(roles.flatMap((role) => db.roles.get(role) ?? []))].sort();
}

/** A new user row, as the Postgres defaults make it. */
export function newMemoryUser(fields: Partial<MemoryUser> & { id: string; createdAt: Date }): MemoryUser {
  return {
    unionid: null,
    roles: [],
    phoneNumber: null,
    nickname: null,
    avatarUrl: null,
    disabledAt: null,
    disabledBy: null,
    disabledReason: null,
    mergedInto: null,
    ...fields,
  };
}

/** The user holding a phone number (one at most), or undefined. */
export function userWithPhone(db: MemoryDatabase, phoneNumber: string): MemoryUser | undefined {
  for (const user of db.users.values()) if (user.phoneNumber === phoneNumber) return user;
  return undefined;
}

export function appendAudit(db: MemoryDatabase, record: AuditRecord): void {
  db.auditEvents.push({ ...record, id: newRowId() });
}
