/**
 * The interfaces the use cases need from the outside world. Implementations live in store/
 * (Postgres via drizzle, Redis, in-process memory) and wechat/; each port has one contract suite
 * in test/contract that every implementation passes.
 */

/** Milliseconds since the epoch; injected so tests can move time. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * The system clock shifted by an offset held in shared memory, so that every thread of a running
 * service reads the same time (the gRPC thread is handed `offsetMs`). Production leaves the offset
 * at 0; tests move it.
 */
export interface SharedClock extends Clock {
  readonly offsetMs: Float64Array;
}

export function sharedClock(
  offsetMs: Float64Array = new Float64Array(new SharedArrayBuffer(8)),
): SharedClock {
  return { offsetMs, now: () => Date.now() + (offsetMs[0] as number) };
}

export interface UserRecord {
  id: string;
  unionid: string | null;
  roles: string[];
  phoneNumber: string | null;
  /** Set with UpdateProfile; null: never set (the answers carry the configured default). */
  nickname: string | null;
  avatarUrl: string | null;
  disabledAt: Date | null;
  /** Who disabled the user (an admin's user id, or "cli") and why; null while enabled. */
  disabledBy: string | null;
  disabledReason: string | null;
  /** The user this one was merged into (MergeUsers): then disabled, with no identities left. */
  mergedInto: string | null;
  createdAt: Date;
}

/** What UpdateProfile changes; a field left out is kept. */
export interface ProfileChange {
  nickname?: string;
  avatarUrl?: string;
}

/** What the service changes about a user outside a login. */
export interface UserStore {
  /** Changes the user's profile; the user as now stored, or null for an unknown user. */
  updateProfile(userId: string, change: ProfileChange): Promise<UserRecord | null>;
}

export interface WechatIdentity {
  appId: string;
  openid: string;
  unionid: string | null;
}

/** The new session a login stores, with the hash of its first refresh token. */
export interface SessionStart {
  id: string;
  refreshTokenHash: Buffer;
  createdAt: Date;
  idleExpiresAt: Date;
  absoluteExpiresAt: Date;
  client: { ip: string; userAgent: string; deviceId: string };
}

export interface StartedSession {
  user: UserRecord;
  /** What the user's roles grant now (the roles table), for the access token. */
  permissions: string[];
  /** The identity's unionid as now stored (WeChat may add it on a later login). */
  unionid: string | null;
  /** True only for the one login that created this (app, openid) identity. */
  created: boolean;
  /** False when the user is disabled: then no session was stored. */
  sessionStored: boolean;
}

/** A session that can still be refreshed, as its user sees it in a list of their sessions. */
export interface LiveSession {
  id: string;
  appId: string;
  createdAt: Date;
  lastRefreshedAt: Date | null;
  client: { ip: string; userAgent: string; deviceId: string };
}

/**
 * A session whose access tokens VerifyToken must refuse: ended (revoked), or, with `staleBefore`,
 * still live but its tokens issued before then out of date (its user's roles or permissions
 * changed; a refresh issues current ones).
 */
export interface RevokedSession {
  id: string;
  /** When tokens of the session can no longer be valid anyway (the mirror may forget it then). */
  forgetAfter: Date;
  staleBefore?: Date;
}

/** A session as a refresh sees it: what a new access token needs, and whether it may have one. */
export interface RefreshableSession {
  id: string;
  userId: string;
  appId: string;
  openid: string;
  unionid: string | null;
  roles: string[];
  /** What the user's roles grant now. */
  permissions: string[];
  /** The generation of the session's newest refresh token. */
  generation: number;
  revokedAt: Date | null;
  idleExpiresAt: Date;
  absoluteExpiresAt: Date;
  userDisabled: boolean;
}

/** How a revocation names its session: by id (from an access token) or by a refresh token. */
/** A session to end: by id (with `userId`, only if it is that user's), or by any of its refresh tokens. */
export type SessionTarget = { sessionId: string; userId?: string } | { refreshTokenHash: Buffer };

export type RotationResult =
  /** No refresh token has this hash. */
  | { found: false }
  | {
      found: true;
      /** True when this call spent the token and stored its successor. */
      rotated: boolean;
      /** Not rotated because `timeLeftMs` ran out first (a lock, a queue): nothing changed. */
      tooLate: boolean;
      /** The presented token's generation, when it was spent, and its successor (sealed). */
      token: { generation: number; spentAt: Date | null; sealedSuccessor: string | null };
      /** The session after this call (with the new generation and idle expiry when rotated). */
      session: RefreshableSession;
    };

export interface SessionStore {
  /**
   * Records a login as one atomic write: finds the user behind the WeChat identity, creating
   * identity and user on first sight (linked to the person already known by this unionid from
   * another app), then stores the session with its first refresh token (generation 0) unless
   * the user is disabled. Concurrent first logins of one identity create it once. A session whose
   * id is already stored (a retry of the same login attempt) is left as it is.
   */
  start(identity: WechatIdentity, session: SessionStart): Promise<StartedSession>;
  /**
   * Stores a session of a user already known (a staff account's password login) under `appId`,
   * with its first refresh token, unless the user is disabled; null for an unknown user.
   */
  startForUser(
    userId: string,
    appId: string,
    session: SessionStart,
  ): Promise<Omit<StartedSession, "unionid" | "created"> | null>;
  /**
   * Records a phone login (LoginWithPhone) atomically: the user is the one holding the WeChat
   * identity or the phone number (or, for a new identity, the unionid); the missing identity or
   * number is linked to them, or a user is created with both. "conflict" when they point at two
   * users: nothing is written. Then the session as `start` stores it. Parallel phone logins of one
   * person make one user. `created` is true when this login created the user.
   */
  startWithPhone(
    identity: WechatIdentity,
    phoneNumber: string,
    session: SessionStart,
  ): Promise<StartedSession | "conflict">;
  /**
   * Spends the refresh token with `tokenHash` and stores its successor (next generation), but
   * only if it is the session's newest, unspent token, the session is neither revoked nor expired
   * and the user is not disabled; atomically, so of parallel calls with one token one rotates.
   * Otherwise changes nothing and reports what it found, for the caller to judge.
   */
  rotateRefreshToken(rotation: {
    tokenHash: Buffer;
    now: Date;
    successor: { tokenHash: Buffer; sealedToken: string | null; idleExpiresAt: Date };
    /**
     * What is left of the caller's deadline, or null for none. Once it has passed (waiting on a
     * lock, say) the rotation is not carried out: a caller who gave up never received the
     * successor, and its retry must not find the token spent.
     */
    timeLeftMs: number | null;
  }): Promise<RotationResult>;
  /**
   * Ends the session picked by `target` (by id, or by any refresh token of it, spent or not), and
   * with `everySessionOfUser` every live session of its user too, provided the target is an id or
   * the live session's newest, unspent refresh token (an old token from a log ends no more than its
   * own session). Sessions already ended and unknown targets are no-ops; returns the sessions this
   * call ended.
   */
  revoke(
    target: SessionTarget,
    options: { everySessionOfUser: boolean; reason: string; now: Date; audit?: AuditNote },
  ): Promise<RevokedSession[]>;
  /**
   * Sessions revoked, or marked out of date, after `since` (whose access tokens may still be
   * unexpired then); a revoked session is listed as revoked whatever else it was.
   */
  listRevokedSince(since: Date): Promise<RevokedSession[]>;
  /**
   * The sessions of `userId` that are neither revoked nor expired (idle or absolute) at `now`,
   * newest first, at most `limit`.
   */
  listLiveSessions(userId: string, now: Date, limit: number): Promise<LiveSession[]>;
  /**
   * Erases the sealed successors of refresh tokens spent before `spentBefore` (their reuse grace
   * is over, so nothing may ask for them again); returns how many it erased.
   */
  eraseSealedSuccessors(spentBefore: Date): Promise<number>;
  /**
   * Deletes up to `limit` sessions that ended before `endedBefore`, by revocation or by their
   * absolute expiry, with every refresh token they had; returns how many. Users stay. Sessions
   * that another call is deleting are skipped, so instances may purge at once.
   */
  purgeEndedSessions(endedBefore: Date, limit: number): Promise<number>;
}

export interface StoredSigningKey {
  kid: string;
  alg: "ES256";
  /** The public key as a JWK (kty, crv, x, y). */
  publicJwk: Record<string, string>;
  /** The PKCS#8 private key, sealed with the key-encryption key. */
  sealedPrivateKey: string;
  createdAt: Date;
  /** Published from creation; signs from this instant. */
  activatesAt: Date;
  /** Stops verifying (and leaves JWKS) at this instant; null while current. */
  retiresAt: Date | null;
}

export interface SigningKeyStore {
  /**
   * Returns the keys that are not retired at `now`, first creating one with `generate` when none
   * can sign. Instances starting together agree on one key (the creation is serialized).
   */
  ensureSigningKey(now: Date, generate: () => StoredSigningKey): Promise<StoredSigningKey[]>;
  /**
   * Adds `next` (which activates later) and sets every current key to retire at
   * `retireCurrentAt`, unless a key is still waiting to activate: then changes nothing. Returns
   * the keys not retired at `now`, as ensureSigningKey does. Serialized with ensureSigningKey.
   */
  rotate(
    now: Date,
    next: StoredSigningKey,
    retireCurrentAt: Date,
  ): Promise<{ rotated: boolean; keys: StoredSigningKey[] }>;
}

/**
 * A small key-value store with expiry: Redis in production, a Map in the embedded default. Keys
 * are given without the deployment's prefix; the implementation adds it.
 */
export interface KeyValueStore {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Sets only when the key is absent; true when this call set it. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Sets the value and returns the one it replaced (null when there was none), atomically. */
  swap(key: string, value: string, ttlMs: number): Promise<string | null>;
  delete(key: string): Promise<void>;
}

/**
 * Messages to every instance of the deployment: Redis pub/sub in production, this process alone
 * in the embedded default. Delivery is best effort (a message published while an instance is
 * disconnected is lost to it), so every subscriber is told when it may have missed some and
 * rebuilds its state from Postgres, which stays the source of truth.
 */
export interface Broadcast {
  publish(topic: string, message: string): Promise<void>;
  /**
   * Delivers the topic's messages from now on. `onGap` runs whenever delivery resumes after an
   * interruption, once the subscription is in place again, so that a reload started from it
   * cannot miss a message.
   */
  subscribe(topic: string, onMessage: (message: string) => void, onGap: () => void): Promise<void>;
  close(): Promise<void>;
}

/**
 * Counts events per key within a window: failed logins per client, calls per user. Redis in a
 * deployment (shared by every instance), this process's memory in the embedded default.
 */
export interface RateLimiter {
  /** Throws RATE_LIMITED, with how long to wait, when the key has used its allowance; counts nothing. */
  check(key: string): Promise<void>;
  /** Counts one event for the key. */
  count(key: string): Promise<void>;
  /** Counts one event, throwing RATE_LIMITED instead when the key has used its allowance. */
  take(key: string): Promise<void>;
}

/** A role and what it grants. */
export interface Role {
  name: string;
  permissions: string[];
}

/**
 * The audit row a change writes in its own statement, when it changed something: its subject is
 * the user whose sessions changed, its actor that user unless `actor` names someone else.
 */
export interface AuditNote {
  type: string;
  actor: string | null;
  ip: string;
  userAgent: string;
  details?: Record<string, unknown>;
}

/** Who did something, and from where: an admin (their user id), "cli" or "system". */
export interface Actor {
  actor: string;
  ip: string;
  userAgent: string;
}

/** One row of the audit log. */
export interface AuditEvent extends Actor {
  id: string;
  at: Date;
  /** e.g. login.succeeded, login.failed, user.disabled, roles.changed, admin.call. */
  type: string;
  subjectUserId: string | null;
  details: Record<string, unknown>;
}

/** What an audit row records besides its id. */
export type AuditRecord = Omit<AuditEvent, "id">;

export interface AuditQuery {
  subjectUserId?: string;
  type?: string;
  /** Events at or after `since` and strictly before `before`. */
  since?: Date;
  before?: Date;
  /** Newest first; the page continues after this event id (from the previous page). */
  after?: { at: Date; id: string };
  limit: number;
}

export interface UserQuery {
  userId?: string;
  openid?: string;
  unionid?: string;
  phoneNumber?: string;
  username?: string;
  limit: number;
}

/** A user as an admin sees them: the record, with every way in. */
export interface UserDetails {
  user: UserRecord;
  permissions: string[];
  wechat: WechatIdentity[];
  username: string | null;
}

/** A way in that a user already known adds to their account (LinkIdentity). */
export type IdentityLink =
  | { kind: "wechat"; identity: WechatIdentity }
  /** As WeChat verified it; replaces the user's earlier number. */
  | { kind: "phone"; phoneNumber: string }
  | { kind: "password"; username: string; passwordHash: string };

/**
 * linked: stored now; unchanged: the user already had it; conflict: it belongs to another user, or
 * (password) the user has a username already, or (wechat) the unionid names another person;
 * taken: the username is another user's; no-user: no such user.
 */
export type LinkOutcome = "linked" | "unchanged" | "conflict" | "taken" | "no-user";

export type MergeOutcome =
  | {
      merged: true;
      /** The absorbed user's sessions (ended) and the survivor's (their tokens now out of date). */
      refused: RevokedSession[];
    }
  | {
      merged: false;
      /**
       * not-found: a user is unknown; busy: another change holds one of them, or one was merged
       * already; conflict: the two cannot be one (two unionids, two usernames).
       */
      why: "not-found" | "busy" | "conflict";
      detail: string;
    };

/** Accounts as administrators change them. Every change writes its audit row in its own transaction. */
export interface AccountStore {
  /** Adds the roles not stored yet (ROLE_PERMISSIONS at start); stored ones keep their permissions. */
  seedRoles(roles: readonly Role[]): Promise<void>;
  listRoles(): Promise<Role[]>;
  /**
   * Sets a role's permissions (creating it), and marks out of date the access tokens of every live
   * session whose user holds it; returns those sessions.
   */
  setRolePermissions(role: Role, now: Date, audit: AuditRecord): Promise<RevokedSession[]>;
  /** Sets a user's roles and marks their live sessions' access tokens out of date; null: no such user. */
  setRoles(userId: string, roles: string[], now: Date, audit: AuditRecord): Promise<RevokedSession[] | null>;
  /**
   * Disables the user (who and why kept) and ends every live session; or, with null, enables
   * them. Returns the sessions ended, or null for an unknown user.
   */
  setDisabled(
    userId: string,
    disabled: { by: string; reason: string } | null,
    now: Date,
    audit: AuditRecord,
  ): Promise<RevokedSession[] | null>;
  /** A staff account: a new user with roles and a password; false when the username is taken. */
  createStaffAccount(
    account: { userId: string; username: string; passwordHash: string; roles: string[]; now: Date },
    audit: AuditRecord,
  ): Promise<boolean>;
  /** Adds a way in to a user, with its audit row (identity.linked) when it changed something. */
  linkIdentity(userId: string, link: IdentityLink, audit: AuditRecord): Promise<LinkOutcome>;
  /**
   * Merges `absorbedId` into `survivorId` in one transaction: every WeChat identity and the
   * password move to the survivor, and the phone number and unionid when the survivor has none
   * (its own are kept otherwise); roles are joined; the absorbed user is disabled, marked merged
   * and its sessions ended; the survivor's access tokens are marked out of date (its roles may
   * have grown). Of two overlapping merges one wins and the other is "busy".
   */
  mergeUsers(survivorId: string, absorbedId: string, now: Date, audit: AuditRecord): Promise<MergeOutcome>;
  /** The credential behind a username (as stored, lowercased), or null. */
  findPasswordCredential(username: string): Promise<{ userId: string; passwordHash: string } | null>;
  searchUsers(query: UserQuery): Promise<UserRecord[]>;
  getUser(userId: string): Promise<UserDetails | null>;
  /** Audit rows with no change of their own (a failed login, an admin's read). */
  recordAudit(events: readonly AuditRecord[]): Promise<void>;
  listAudit(query: AuditQuery): Promise<AuditEvent[]>;
  /** Deletes up to `limit` audit rows older than `before`; returns how many. */
  purgeAudit(before: Date, limit: number): Promise<number>;
}

/** A wx.login() code can be exchanged once, within five minutes of being issued (docs/wechat.md). */
export const WECHAT_CODE_LIFETIME_MS = 5 * 60 * 1000;

export interface AppCredentials {
  appId: string;
  appSecret: string;
}

export interface Code2SessionResult {
  openid: string;
  unionid: string | null;
  sessionKey: string;
}

export interface StableToken {
  accessToken: string;
  expiresInMs: number;
}

/** WeChat's server API as the service uses it. Failures are IdentityErrors with WeChat reasons. */
export interface WechatApi {
  /** `timeoutMs`: what is left of the caller's deadline; the call takes at most that (or its own timeout). */
  code2Session(
    app: AppCredentials,
    code: string,
    options?: { timeoutMs?: number },
  ): Promise<Code2SessionResult>;
  /** The app's access_token (cgi-bin/stable_token); forceRefresh makes WeChat issue a new one. */
  stableToken(app: AppCredentials, forceRefresh: boolean): Promise<StableToken>;
  /** The phone number behind a getPhoneNumber button code (wxa/business/getuserphonenumber). */
  getUserPhoneNumber(accessToken: string, code: string, openid: string): Promise<PhoneNumber>;
  /** Whether WeChat still considers this the user's session_key (wxa/checksession). */
  checkSessionKey(accessToken: string, openid: string, sessionKey: string): Promise<boolean>;
}

export interface PhoneNumber {
  phoneNumber: string;
  purePhoneNumber: string;
  countryCode: string;
}
