import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import type { AccountStore, SessionStart, SessionStore, UserStore } from "../../src/domain/ports.js";
import { hashRefreshToken } from "../../src/domain/tokens.js";
import { createMemoryAccountStore } from "../../src/store/memory/account-store.js";
import { createMemoryDatabase } from "../../src/store/memory/memory-database.js";
import { createMemorySessionStore } from "../../src/store/memory/session-store.js";
import { createMemoryUserStore } from "../../src/store/memory/user-store.js";
import { createPgAccountStore } from "../../src/store/pg/account-store.js";
import { sessions as sessionsTable, users as usersTable } from "../../src/store/pg/schema.js";
import { createPgSessionStore } from "../../src/store/pg/session-store.js";
import { createPgUserStore } from "../../src/store/pg/user-store.js";
import { PG_DATABASES } from "./backends.js";
import { uniqueName } from "./scratch-database.js";

/** A session as the contract reads it back from the backend's own tables. */
export interface StoredSessionRow {
  userId: string;
  appId: string;
  clientIp: string;
  revokedAt: Date | null;
  idleExpiresAt: Date;
}

/** A SessionStore and UserStore on one backend, with what the contract reads and changes beside them. */
export interface SessionStoreBackend {
  sessions: SessionStore;
  users: UserStore;
  accounts: AccountStore;
  storedSession(id: string): Promise<StoredSessionRow | undefined>;
  sessionsOfUser(userId: string): Promise<StoredSessionRow[]>;
  refreshTokensOf(sessionId: string): Promise<Array<{ tokenHash: Buffer; generation: number }>>;
  /** What an administrator does; no port offers it yet. */
  disableUser(userId: string): Promise<void>;
  close(): Promise<void>;
}

const MAX_ACCESS_TOKEN_TTL_MS = 3600_000;

export const SESSION_STORE_BACKENDS: ReadonlyArray<{ name: string; open(): Promise<SessionStoreBackend> }> = [
  {
    name: "in memory",
    async open() {
      const db = createMemoryDatabase();
      return {
        sessions: createMemorySessionStore(db, { maxAccessTokenTtlMs: MAX_ACCESS_TOKEN_TTL_MS }),
        users: createMemoryUserStore(db),
        accounts: createMemoryAccountStore(db, { maxAccessTokenTtlMs: MAX_ACCESS_TOKEN_TTL_MS }),
        storedSession: async (id) => db.sessions.get(id),
        sessionsOfUser: async (userId) => [...db.sessions.values()].filter((s) => s.userId === userId),
        refreshTokensOf: async (sessionId) =>
          [...db.refreshTokens.values()].filter((t) => t.sessionId === sessionId),
        async disableUser(userId) {
          const user = db.users.get(userId);
          if (user) user.disabledAt = new Date();
        },
        close: async () => {},
      };
    },
  },
  ...PG_DATABASES.map(({ name, open }) => ({
    name,
    async open(): Promise<SessionStoreBackend> {
      const { handle, drop } = await open();
      await handle.migrate();
      const { db } = handle;
      return {
        sessions: createPgSessionStore(db, { maxAccessTokenTtlMs: MAX_ACCESS_TOKEN_TTL_MS }),
        users: createPgUserStore(db),
        accounts: createPgAccountStore(db, { maxAccessTokenTtlMs: MAX_ACCESS_TOKEN_TTL_MS }),
        storedSession: (id) => db.query.sessions.findFirst({ where: (t, { eq }) => eq(t.id, id) }),
        sessionsOfUser: (userId) => db.select().from(sessionsTable).where(eq(sessionsTable.userId, userId)),
        refreshTokensOf: async (sessionId) =>
          (await db.query.refreshTokens.findMany({ where: (t, { eq }) => eq(t.sessionId, sessionId) })).map(
            (t) => ({ tokenHash: Buffer.from(t.tokenHash as Buffer), generation: t.generation }),
          ),
        async disableUser(userId) {
          await db.update(usersTable).set({ disabledAt: new Date() }).where(eq(usersTable.id, userId));
        },
        async close() {
          await handle.close();
          await drop();
        },
      };
    },
  })),
];

/** A login's session, each with its own id and refresh token hash; idle 1 s, absolute 2 s. */
export function newSession(): SessionStart {
  const now = new Date();
  return {
    id: randomUUID(),
    refreshTokenHash: hashRefreshToken(uniqueName("rt")),
    createdAt: now,
    idleExpiresAt: new Date(now.getTime() + 1000),
    absoluteExpiresAt: new Date(now.getTime() + 2000),
    client: { ip: "10.0.0.1", userAgent: "ua", deviceId: "d" },
  };
}
