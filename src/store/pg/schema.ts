import { sql } from "drizzle-orm";
import {
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";

/**
 * The single description of the tables. After changing it, run `npm run db:generate` and commit
 * the SQL migration drizzle-kit writes into drizzle/.
 */

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => "bytea" });
const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/** A person. One user may hold WeChat identities in several apps, linked by unionid. */
export const users = pgTable("users", {
  id: uuid("id").primaryKey().default(sql`gen_random_uuid()`),
  unionid: text("unionid").unique(),
  roles: text("roles").array().notNull().default(sql`'{}'::text[]`),
  /**
   * The number WeChat verified for this user (LoginWithPhone, LinkIdentity, GetPhoneNumber with
   * bind): one user per number.
   */
  phoneNumber: text("phone_number").unique(),
  /** Set when an administrator merged this user into another (MergeUsers); the user is then disabled. */
  mergedInto: uuid("merged_into"),
  /** Set with UpdateProfile; null until then (the configured default is shown instead). */
  nickname: text("nickname"),
  avatarUrl: text("avatar_url"),
  disabledAt: ts("disabled_at"),
  /** Who disabled the user (an admin's user id, or "cli") and why; kept in the audit log too. */
  disabledBy: text("disabled_by"),
  disabledReason: text("disabled_reason"),
  createdAt: ts("created_at").notNull().defaultNow(),
});

/** A role and the permissions it grants; seeded from ROLE_PERMISSIONS, edited with AdminService. */
export const roles = pgTable("roles", {
  name: text("name").primaryKey(),
  permissions: text("permissions").array().notNull().default(sql`'{}'::text[]`),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

/** A staff account's way in: a username and an argon2id hash of its password. */
export const passwordCredentials = pgTable("password_credentials", {
  userId: uuid("user_id")
    .primaryKey()
    .references(() => users.id),
  /** Stored lowercased: one account per name whatever its case. */
  username: text("username").notNull().unique(),
  passwordHash: text("password_hash").notNull(),
  createdAt: ts("created_at").notNull().defaultNow(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

/**
 * Security events: who (actor: a user id, "cli" or "system") did what (type) to whom (subject),
 * when, from where. Written in the transaction of the change it records. Subjects are not
 * foreign keys: the log outlives merged and purged rows.
 */
export const auditEvents = pgTable(
  "audit_events",
  {
    id: uuid("id").primaryKey(),
    at: ts("at").notNull(),
    type: text("type").notNull(),
    actor: text("actor").notNull(),
    subjectUserId: uuid("subject_user_id"),
    clientIp: text("client_ip").notNull().default(""),
    userAgent: text("user_agent").notNull().default(""),
    details: jsonb("details").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
  },
  (t) => [
    index("audit_events_subject_idx").on(t.subjectUserId, t.at),
    index("audit_events_type_idx").on(t.type, t.at),
    index("audit_events_at_idx").on(t.at),
  ],
);

/** A user's openid in one mini-program. */
export const wechatIdentities = pgTable(
  "wechat_identities",
  {
    appId: text("app_id").notNull(),
    openid: text("openid").notNull(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id),
    unionid: text("unionid"),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.appId, t.openid] }), index("wechat_identities_user_idx").on(t.userId)],
);

/** One login: lives until idle or absolute expiry, or until revoked. */
export const sessions = pgTable(
  "sessions",
  {
    id: uuid("id").primaryKey(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id),
    appId: text("app_id").notNull(),
    openid: text("openid").notNull(),
    createdAt: ts("created_at").notNull(),
    lastRefreshedAt: ts("last_refreshed_at"),
    idleExpiresAt: ts("idle_expires_at").notNull(),
    absoluteExpiresAt: ts("absolute_expires_at").notNull(),
    refreshGeneration: integer("refresh_generation").notNull().default(0),
    revokedAt: ts("revoked_at"),
    revokedReason: text("revoked_reason"),
    /**
     * Access tokens of this live session issued before this instant are out of date (its user's
     * roles or permissions changed): VerifyToken refuses them and a refresh issues current ones.
     */
    accessStaleBefore: ts("access_stale_before"),
    clientIp: text("client_ip").notNull().default(""),
    userAgent: text("user_agent").notNull().default(""),
    deviceId: text("device_id").notNull().default(""),
  },
  (t) => [
    index("sessions_user_idx").on(t.userId),
    index("sessions_revoked_idx").on(t.revokedAt).where(sql`${t.revokedAt} is not null`),
    index("sessions_access_stale_idx").on(t.accessStaleBefore).where(sql`${t.accessStaleBefore} is not null`),
    // The retention job finds expired sessions by it (absolute expiry never changes, so a refresh
    // does not touch this index).
    index("sessions_absolute_expires_idx").on(t.absoluteExpiresAt),
  ],
);

/** Every refresh token ever issued, by SHA-256 hash only, so a replayed old one is recognised. */
export const refreshTokens = pgTable(
  "refresh_tokens",
  {
    tokenHash: bytea("token_hash").primaryKey(),
    sessionId: uuid("session_id")
      .notNull()
      .references(() => sessions.id, { onDelete: "cascade" }),
    generation: integer("generation").notNull(),
    createdAt: ts("created_at").notNull(),
    spentAt: ts("spent_at"),
    /**
     * The token that replaced this one, sealed, kept while parallel refreshes of this token may
     * still arrive (REFRESH_TOKEN_REUSE_GRACE), so they all receive the same successor.
     */
    sealedSuccessor: text("sealed_successor"),
  },
  (t) => [
    index("refresh_tokens_session_idx").on(t.sessionId),
    // The sweep that erases successors once their grace has passed reads only these few rows.
    index("refresh_tokens_sealed_successor_idx").on(t.spentAt).where(sql`${t.sealedSuccessor} is not null`),
  ],
);

/** Access-token signing keys; the private part is sealed with the key-encryption key. */
export const signingKeys = pgTable("signing_keys", {
  kid: text("kid").primaryKey(),
  alg: text("alg").notNull(),
  publicJwk: jsonb("public_jwk").$type<Record<string, string>>().notNull(),
  sealedPrivateKey: text("sealed_private_key").notNull(),
  createdAt: ts("created_at").notNull(),
  activatesAt: ts("activates_at").notNull(),
  retiresAt: ts("retires_at"),
});
