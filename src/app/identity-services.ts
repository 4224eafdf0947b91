import { createAdmin } from "../accounts/admin.js";
import { createLinkIdentity } from "../accounts/link-identity.js";
import { createLoginWithPassword } from "../accounts/login-with-password.js";
import { createPasswordHasher } from "../accounts/password-hasher.js";
import type { Config } from "../config.js";
import { createAppRegistry } from "../domain/app-registry.js";
import type {
  AccountStore,
  Broadcast,
  Clock,
  KeyValueStore,
  RateLimiter,
  SessionStore,
  SigningKeyStore,
  UserStore,
  WechatApi,
} from "../domain/ports.js";
import { createSealer, SealedValueError } from "../domain/sealing.js";
import { createCheckSessionKey } from "../identity/check-session-key.js";
import { createDecryptUserData } from "../identity/decrypt-user-data.js";
import { createGetPhoneNumber } from "../identity/get-phone-number.js";
import { createLogin } from "../identity/login.js";
import { createLoginFailureLog } from "../identity/login-failures.js";
import { createLogout } from "../identity/logout.js";
import { createRefresh } from "../identity/refresh.js";
import { createUpdateProfile } from "../identity/update-profile.js";
import type { UseCases } from "../identity/use-cases.js";
import { createUserSessions } from "../identity/user-sessions.js";
import { createVerifyToken } from "../identity/verify-token.js";
import type { Logger } from "../observability/logger.js";
import { type Metrics, registerGauge, registerVerifyCache } from "../observability/metrics.js";
import { createRevocations, type Revocations } from "../revocation/revocations.js";
import { keepKeyRingFresh } from "../signing-keys/keep-key-ring-fresh.js";
import { createKeyRing, type KeyRing, keyRotationSettings } from "../signing-keys/key-ring.js";
import type { RateLimit } from "../store/rate-limiter.js";
import { errorSummary } from "../util/error-summary.js";
import { createAppAccessTokens } from "../wechat-session/app-access-tokens.js";
import { createCodeExchange } from "../wechat-session/code-exchange.js";
import { createPhoneNumbers } from "../wechat-session/phone-numbers.js";
import { createSessionKeyVault } from "../wechat-session/session-key-vault.js";

/** The ports and settings the identity services are built on; the app context passes the real ones. */
export interface IdentityServiceDeps {
  config: Pick<
    Config,
    | "tokens"
    | "signingKeys"
    | "wechat"
    | "verifyCacheBytes"
    | "rateLimits"
    | "sessionRetentionMs"
    | "profileDefaults"
    | "accounts"
  >;
  clock: Clock;
  log: Logger;
  keyEncryptionKey: Buffer;
  sessions: SessionStore;
  users: UserStore;
  accounts: AccountStore;
  signingKeys: SigningKeyStore;
  kv: KeyValueStore;
  broadcast: Broadcast;
  wechat: WechatApi;
  /** Rate limiters whose counters every instance shares (SharedStorage.rateLimiter). */
  rateLimiter(limit: RateLimit): RateLimiter;
  /** Where the revocations' lag and the VerifyToken cache are reported; none in fast tests. */
  metrics?: Metrics;
}

const MINUTE = 60_000;
/** LinkIdentity tries a user may make a minute: each asks WeChat (phone numbers are billed) or hashes a password. */
const LINKS_PER_USER_PER_MINUTE = 10;

/** How often each instance erases the sealed successors whose reuse grace has passed. */
export const SUCCESSOR_SWEEP_INTERVAL_MS = 60_000;
/** How often each instance deletes the sessions past SESSION_RETENTION, and how many at a time. */
export const RETENTION_SWEEP_INTERVAL_MS = 10 * MINUTE;
const RETENTION_BATCH = 1000;
/** Most batches one sweep deletes; the next sweep goes on where it stopped. */
const RETENTION_MAX_BATCHES = 100;

export interface IdentityServices {
  keyRing: KeyRing;
  revocations: Revocations;
  useCases: UseCases;
  /**
   * Erases the sealed successors of refresh tokens spent longer ago than the reuse grace: kept
   * only so that a parallel refresh within the grace gets the same successor. Runs every minute.
   */
  eraseSpentSuccessors(): Promise<number>;
  /**
   * Deletes the sessions that ended (revoked, or past their absolute expiry) longer ago than
   * SESSION_RETENTION, with their refresh tokens, in batches; returns how many. Every ten minutes.
   */
  purgeEndedSessions(): Promise<number>;
  /** Deletes audit events older than AUDIT_RETENTION, in batches; every ten minutes. */
  purgeAudit(): Promise<number>;
  /** Stops the key reloads and the revocation resyncs. */
  stop(): void;
}

/**
 * The use cases and what they share (the key ring, the revocations, the WeChat session), on the
 * ports given: Postgres, Redis and WeChat in the service, the in-memory stores in fast tests.
 * Loads the signing keys and the revocations before it returns.
 */
export async function createIdentityServices(deps: IdentityServiceDeps): Promise<IdentityServices> {
  const { config, clock, log, kv, broadcast, wechat, sessions } = deps;
  const sealer = (purpose: string) => createSealer(deps.keyEncryptionKey, purpose);
  const stops: Array<() => void> = [];
  const stop = () => {
    for (const fn of stops.splice(0).reverse()) fn();
  };

  const keyRing = createKeyRing({
    store: deps.signingKeys,
    sealer: sealer("signing-key"),
    clock,
    settings: keyRotationSettings(config.signingKeys, config.tokens),
  });
  try {
    await keyRing.load();
  } catch (err) {
    if (err instanceof SealedValueError) {
      throw new Error(
        "the signing keys cannot be decrypted: KEY_ENCRYPTION_KEY is not the key that sealed them",
      );
    }
    throw err;
  }
  stops.push(await keepKeyRingFresh({ keyRing, broadcast, log }));

  const revocations = createRevocations({
    sessions,
    broadcast,
    clock,
    log,
    maxAccessTokenTtlMs: config.tokens.accessTokenTtlMs,
    observeLag: deps.metrics && ((seconds) => deps.metrics?.revocationLag.observe(seconds)),
  });
  try {
    await revocations.start();
  } catch (err) {
    stop();
    throw err;
  }
  stops.push(() => revocations.stop());

  const { accounts } = deps;
  // Roles named in ROLE_PERMISSIONS and not stored yet; stored ones keep their AdminService edits.
  await accounts.seedRoles(config.accounts.rolePermissions);
  const hasher = createPasswordHasher(config.accounts.passwordHash);
  const apps = createAppRegistry(config.wechat.apps);
  const sessionKeys = createSessionKeyVault({
    kv,
    sealer: sealer("session-key"),
    ttlMs: config.tokens.refreshIdleTtlMs,
  });
  const appAccessTokens = createAppAccessTokens({
    wechat,
    kv,
    sealer: sealer("app-access-token"),
    clock,
    wechatTimeoutMs: config.wechat.timeoutMs,
  });
  const verifyToken = createVerifyToken({
    keyRing,
    revocations,
    settings: config.tokens,
    clock,
    cacheBytes: config.verifyCacheBytes,
  });
  if (deps.metrics) {
    registerVerifyCache(deps.metrics.registry, "main", verifyToken.cacheStats);
    registerGauge(
      deps.metrics.registry,
      "identity_revoked_sessions",
      "Sessions in this instance's revocation mirror (ended, or with out-of-date tokens, until those expire).",
      () => revocations.size,
    );
  }
  const phoneNumbers = createPhoneNumbers({ appAccessTokens, wechat });
  const codeExchange = createCodeExchange({
    wechat,
    kv,
    sealer: sealer("code-exchange"),
    clock,
    wechatTimeoutMs: config.wechat.timeoutMs,
  });
  const recordFailure = createLoginFailureLog({ accounts, clock, log });
  const useCases: UseCases = {
    login: createLogin({
      apps,
      codeExchange,
      phoneNumbers,
      recordFailure,
      sessions,
      sessionKeys,
      keyRing,
      tokenSettings: config.tokens,
      sessionSettings: config.tokens,
      clock,
      loginFailures: deps.rateLimiter({
        name: "login-failures",
        points: config.rateLimits.loginFailures,
        durationMs: MINUTE,
      }),
      profileDefaults: config.profileDefaults,
    }),
    refresh: createRefresh({
      sessions,
      revocations,
      keyRing,
      sealer: sealer("refresh-successor"),
      tokenSettings: config.tokens,
      sessionSettings: config.tokens,
      clock,
      refreshFailures: deps.rateLimiter({
        name: "refresh-failures",
        points: config.rateLimits.refreshFailures,
        durationMs: MINUTE,
      }),
    }),
    logout: createLogout({
      revocations,
      keyRing,
      tokenSettings: config.tokens,
      sessionSettings: config.tokens,
      clock,
    }),
    verifyToken,
    decryptUserData: createDecryptUserData({
      verifyToken,
      sessionKeys,
      clock,
      perUser: deps.rateLimiter({
        name: "user-data",
        points: config.rateLimits.userData,
        durationMs: MINUTE,
      }),
    }),
    getPhoneNumber: createGetPhoneNumber({
      verifyToken,
      apps,
      phoneNumbers,
      accounts,
      clock,
      perUser: deps.rateLimiter({
        name: "phone-numbers",
        points: config.rateLimits.phoneNumbers,
        durationMs: MINUTE,
      }),
    }),
    checkSessionKey: createCheckSessionKey({ verifyToken, apps, sessionKeys, appAccessTokens, wechat }),
    userSessions: createUserSessions({ verifyToken, sessions, revocations, clock }),
    updateProfile: createUpdateProfile({ verifyToken, users: deps.users, defaults: config.profileDefaults }),
    loginWithPassword: createLoginWithPassword({
      accounts,
      sessions,
      hasher,
      keyRing,
      tokenSettings: config.tokens,
      sessionSettings: config.tokens,
      clock,
      passwordFailures: deps.rateLimiter({
        name: "password-failures",
        points: config.accounts.passwordFailures,
        durationMs: MINUTE,
      }),
      staffAppId: config.accounts.staffAppId,
      profileDefaults: config.profileDefaults,
      recordFailure,
    }),
    linkIdentity: createLinkIdentity({
      verifyToken,
      apps,
      codeExchange,
      phoneNumbers,
      accounts,
      hasher,
      passwordMinLength: config.accounts.passwordMinLength,
      clock,
      perUser: deps.rateLimiter({
        name: "identity-links",
        points: LINKS_PER_USER_PER_MINUTE,
        durationMs: MINUTE,
      }),
    }),
    admin: createAdmin({
      verifyToken,
      accounts,
      sessions,
      revocations,
      hasher,
      clock,
      passwordMinLength: config.accounts.passwordMinLength,
    }),
  };
  /** Runs `job` every `intervalMs` until stop(); a failure is logged and the next run tries again. */
  const every = (intervalMs: number, job: () => Promise<unknown>, failure: string) => {
    const timer = setInterval(() => {
      job().catch((err: unknown) => log.warn(failure, { error: errorSummary(err) }));
    }, intervalMs);
    timer.unref();
    stops.push(() => clearInterval(timer));
  };

  const eraseSpentSuccessors = () =>
    sessions.eraseSealedSuccessors(new Date(clock.now() - config.tokens.refreshReuseGraceMs));
  every(
    SUCCESSOR_SWEEP_INTERVAL_MS,
    eraseSpentSuccessors,
    "spent refresh tokens' successors could not be erased; retrying in a minute",
  );

  const purgeEndedSessions = async () => {
    const endedBefore = new Date(clock.now() - config.sessionRetentionMs);
    let purged = 0;
    for (let batch = 0; batch < RETENTION_MAX_BATCHES; batch++) {
      const deleted = await sessions.purgeEndedSessions(endedBefore, RETENTION_BATCH);
      purged += deleted;
      if (deleted < RETENTION_BATCH) break;
    }
    if (purged > 0) log.info("retention: deleted ended sessions", { sessions: purged, endedBefore });
    return purged;
  };
  every(
    RETENTION_SWEEP_INTERVAL_MS,
    purgeEndedSessions,
    "ended sessions could not be deleted; retrying at the next sweep",
  );

  const purgeAudit = async () => {
    const before = new Date(clock.now() - config.accounts.auditRetentionMs);
    let purged = 0;
    for (let batch = 0; batch < RETENTION_MAX_BATCHES; batch++) {
      const deleted = await accounts.purgeAudit(before, RETENTION_BATCH);
      purged += deleted;
      if (deleted < RETENTION_BATCH) break;
    }
    if (purged > 0) log.info("retention: deleted old audit events", { events: purged, before });
    return purged;
  };
  every(
    RETENTION_SWEEP_INTERVAL_MS,
    purgeAudit,
    "old audit events could not be deleted; retrying at the next sweep",
  );

  return { keyRing, revocations, useCases, eraseSpentSuccessors, purgeEndedSessions, purgeAudit, stop };
}
