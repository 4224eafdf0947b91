import type { UserRecord } from "../../domain/ports.js";

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
  /** Keyed by identityKey(appId, openid). */
  identities: Map<string, MemoryIdentity>;
  sessions: Map<string, MemorySession>;
  /** Keyed by the token hash in hex. */
  refreshTokens: Map<string, MemoryRefreshToken>;
}

export const identityKey = (appId: string, openid: string) => `${appId}\u0000${openid}`;

export function createMemoryDatabase(): MemoryDatabase {
  return { users: new Map(), identities: new Map(), sessions: new Map(), refreshTokens: new Map() };
}
