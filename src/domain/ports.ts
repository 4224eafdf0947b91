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

export interface UserRecord {
  id: string;
  unionid: string | null;
  roles: string[];
  disabledAt: Date | null;
  createdAt: Date;
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
  /** The identity's unionid as now stored (WeChat may add it on a later login). */
  unionid: string | null;
  /** True only for the one login that created this (app, openid) identity. */
  created: boolean;
  /** False when the user is disabled: then no session was stored. */
  sessionStored: boolean;
}

export interface RevokedSession {
  id: string;
  /** When tokens of the session can no longer be valid anyway (the mirror may forget it then). */
  forgetAfter: Date;
}

export interface SessionStore {
  /**
   * Records a login as one atomic write: finds the user behind the WeChat identity, creating
   * identity and user on first sight (linked to the person already known by this unionid from
   * another app), then stores the session with its first refresh token (generation 0) unless
   * the user is disabled. Concurrent first logins of one identity create it once.
   */
  start(identity: WechatIdentity, session: SessionStart): Promise<StartedSession>;
  /** Sessions revoked whose access tokens may still be unexpired at `since`. */
  listRevokedSince(since: Date): Promise<RevokedSession[]>;
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
  delete(key: string): Promise<void>;
}

/** A wx.login() code can be exchanged once, within five minutes of being issued (WECHAT.md). */
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

/** WeChat's server API as the service uses it. Failures are IdentityErrors with WeChat reasons. */
export interface WechatApi {
  code2Session(app: AppCredentials, code: string): Promise<Code2SessionResult>;
}
