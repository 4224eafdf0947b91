import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Redis } from "ioredis";
import type { Config } from "./config.js";
import { type Broadcast, type KeyValueStore, type SharedClock, sharedClock } from "./domain/ports.js";
import { createSealer, SealedValueError } from "./domain/sealing.js";
import { IdentityService } from "./gen/identity/v1/identity_pb.js";
import { createAppAccessTokens } from "./identity/app-access-tokens.js";
import { createAppRegistry } from "./identity/apps.js";
import { createCheckSessionKey } from "./identity/check-session-key.js";
import { createCodeExchange } from "./identity/code-exchange.js";
import { createDecryptUserData } from "./identity/decrypt-user-data.js";
import { createKeyRing, type KeyRotationSettings, keepKeyRingFresh } from "./identity/key-ring.js";
import { createLogin } from "./identity/login.js";
import { createLogout } from "./identity/logout.js";
import { createGetPhoneNumber } from "./identity/phone-number.js";
import { createRefresh } from "./identity/refresh.js";
import { createRevocations } from "./identity/revocations.js";
import { createSessionKeyVault } from "./identity/session-keys.js";
import { createVerifyToken } from "./identity/verify-token.js";
import { createLocalBroadcast } from "./store/memory/broadcast.js";
import { createMemoryKeyValueStore } from "./store/memory/key-value-store.js";
import { type DatabaseHandle, openPglite, openPostgres } from "./store/pg/database.js";
import { createPgSessionStore } from "./store/pg/session-store.js";
import { createPgSigningKeyStore } from "./store/pg/signing-key-store.js";
import { createPgUserStore } from "./store/pg/user-store.js";
import { createRedisBroadcast } from "./store/redis/broadcast.js";
import { connectRedis } from "./store/redis/connection.js";
import { createRedisKeyValueStore } from "./store/redis/key-value-store.js";
import { guardPort } from "./store/storage-errors.js";
import { createHttpHandler, SANDBOX_MOUNT } from "./transport/connect.js";
import { startGrpcThread } from "./transport/grpc-thread.js";
import { createDualProtocolServer } from "./transport/http-server.js";
import { createIdentityServiceImpl } from "./transport/identity-service.js";
import { createLogger, errorSummary, type Logger } from "./util/logger.js";
import { createWechatClient } from "./wechat/client.js";
import { createWechatSandbox, type WechatSandbox } from "./wechat/sandbox.js";

/** What tests may replace; production passes nothing. */
export interface AppOverrides {
  /** Shared, so that the gRPC thread reads the same time. */
  clock?: SharedClock;
  log?: Logger;
}

export interface RunningApp {
  grpcPort: number;
  httpPort: number;
  /** Present when the built-in WeChat sandbox serves (no WeChat credentials configured). */
  sandbox: WechatSandbox | undefined;
  log: Logger;
  stop(): Promise<void>;
}

const KEK_FILE = "key-encryption-key";

/** The key-encryption key: from the config, or (outside production) a file in the data folder. */
export async function keyEncryptionKey(config: Readonly<Config>, log: Logger): Promise<Buffer> {
  if (config.keyEncryptionKey) return config.keyEncryptionKey;
  if (config.dataDir === "memory://") return randomBytes(32); // nothing is kept, so neither is the key
  const file = join(config.dataDir, KEK_FILE);
  try {
    const key = Buffer.from((await readFile(file, "utf8")).trim(), "base64");
    if (key.length === 32) return key;
    throw new Error(`${file} does not hold 32 bytes of base64`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(config.dataDir, { recursive: true });
  const key = randomBytes(32);
  await writeFile(file, key.toString("base64"), { mode: 0o600 });
  log.warn(
    "generated a key-encryption key; set KEY_ENCRYPTION_KEY instead in production, the same on every instance",
    {
      file,
    },
  );
  return key;
}

/** The key schedule the config implies (also used by the rotation command). */
export function signingKeySettings(config: Readonly<Config>): KeyRotationSettings {
  return {
    publishAheadMs: config.signingKeys.publishAheadSeconds * 1000,
    // A token signed just before the switch lives this long (plus the clock-skew leeway).
    retireAfterMs: (config.tokens.accessTokenTtlSeconds + config.tokens.leewaySeconds) * 1000,
    rotationIntervalMs: config.signingKeys.rotationIntervalSeconds * 1000,
  };
}

/** The one place that wires everything: config in, running servers out. */
export async function startApp(config: Readonly<Config>, overrides: AppOverrides = {}): Promise<RunningApp> {
  const log = overrides.log ?? createLogger(config.logLevel);
  const clock = overrides.clock ?? sharedClock();
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanUp = async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => {});
  };

  try {
    const kek = await keyEncryptionKey(config, log);

    // DATA_DIR=memory:// keeps the embedded database in memory (tests, throwaway demos).
    const pgliteDir = config.dataDir === "memory://" ? "memory://" : join(config.dataDir, "pglite");
    const database: DatabaseHandle = config.databaseUrl
      ? openPostgres(config.databaseUrl, { maxConnections: config.databasePoolSize })
      : await openPglite(pgliteDir);
    cleanups.push(() => database.close());
    await database.migrate();

    let redis: Redis | undefined;
    let kv: KeyValueStore;
    let broadcast: Broadcast;
    if (config.redisUrl) {
      let lastLogged = 0;
      const onError = (err: Error) => {
        // One line per 10 s is enough to see an outage without flooding the log.
        if (clock.now() - lastLogged < 10_000) return;
        lastLogged = clock.now();
        log.warn("redis connection error", { error: (err as NodeJS.ErrnoException).code ?? err.name });
      };
      redis = connectRedis(config.redisUrl, onError);
      cleanups.push(() => (redis as Redis).quit());
      await redis.connect();
      kv = guardPort(createRedisKeyValueStore(redis, config.redisKeyPrefix), "redis");
      broadcast = createRedisBroadcast(redis, {
        url: config.redisUrl,
        prefix: config.redisKeyPrefix,
        onError,
      });
    } else {
      kv = createMemoryKeyValueStore(clock);
      broadcast = createLocalBroadcast();
    }
    cleanups.push(() => broadcast.close());

    const sessions = guardPort(
      createPgSessionStore(database.db, { maxAccessTokenTtlMs: config.tokens.accessTokenTtlSeconds * 1000 }),
      "postgres",
    );
    const keyRing = createKeyRing({
      store: guardPort(createPgSigningKeyStore(database.db), "postgres"),
      sealer: createSealer(kek, "signing-key"),
      clock,
      settings: signingKeySettings(config),
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
    const stopKeyReloads = await keepKeyRingFresh({ keyRing, broadcast, log });
    cleanups.push(async () => stopKeyReloads());

    const revocations = createRevocations({
      sessions,
      broadcast,
      clock,
      log,
      maxAccessTokenTtlMs: config.tokens.accessTokenTtlSeconds * 1000,
    });
    await revocations.start();
    cleanups.push(async () => revocations.stop());

    const sandbox =
      config.wechat.mode === "sandbox" ? createWechatSandbox({ apps: config.wechat.apps, clock }) : undefined;
    let httpPort = 0;
    const wechat = createWechatClient({
      baseUrl:
        config.wechat.mode === "real"
          ? config.wechat.baseUrl
          : () => `http://127.0.0.1:${httpPort}${SANDBOX_MOUNT}`,
      timeoutMs: config.wechat.timeoutMs,
    });
    cleanups.push(async () => wechat.close());

    const tokenSettings = {
      issuer: config.tokens.issuer,
      audience: config.tokens.audience,
      accessTokenTtlSeconds: config.tokens.accessTokenTtlSeconds,
      leewaySeconds: config.tokens.leewaySeconds,
    };
    const sessionSettings = {
      refreshIdleTtlMs: config.tokens.refreshIdleTtlSeconds * 1000,
      sessionAbsoluteTtlMs: config.tokens.sessionAbsoluteTtlSeconds * 1000,
      reuseGraceMs: config.tokens.refreshReuseGraceSeconds * 1000,
    };
    const sessionKeys = createSessionKeyVault({
      kv,
      sealer: createSealer(kek, "session-key"),
      ttlMs: config.tokens.refreshIdleTtlSeconds * 1000,
      previousKeyGraceMs: 10 * 60 * 1000,
    });
    const apps = createAppRegistry(config.wechat.apps);
    const login = createLogin({
      apps,
      codeExchange: createCodeExchange({
        wechat,
        kv,
        sealer: createSealer(kek, "code-exchange"),
        clock,
        waitTimeoutMs: config.wechat.timeoutMs * 2 + 1000,
      }),
      sessions,
      sessionKeys,
      keyRing,
      tokenSettings,
      sessionSettings,
      clock,
    });
    const verifyToken = createVerifyToken({
      keyRing,
      revocations,
      settings: tokenSettings,
      clock,
      cacheSize: config.verifyCacheSize,
    });
    const refresh = createRefresh({
      sessions,
      revocations,
      keyRing,
      sealer: createSealer(kek, "refresh-successor"),
      tokenSettings,
      sessionSettings,
      clock,
    });
    const logout = createLogout({ revocations, keyRing, tokenSettings, clock });
    const decryptUserData = createDecryptUserData({ verifyToken, sessionKeys, clock });
    const appAccessTokens = createAppAccessTokens({
      wechat,
      kv,
      sealer: createSealer(kek, "app-access-token"),
      clock,
      renewAheadMs: 4 * 60_000, // inside WeChat's last 5 minutes, when it hands out the next token
      waitTimeoutMs: config.wechat.timeoutMs * 2 + 1000,
    });
    const getPhoneNumber = createGetPhoneNumber({
      verifyToken,
      apps,
      appAccessTokens,
      wechat,
      users: guardPort(createPgUserStore(database.db), "postgres"),
    });
    const checkSessionKey = createCheckSessionKey({
      verifyToken,
      apps,
      sessionKeys,
      appAccessTokens,
      wechat,
    });
    const impl = createIdentityServiceImpl(
      { login, refresh, logout, verifyToken, decryptUserData, getPhoneNumber, checkSessionKey },
      log,
    );

    let serving = false;
    const grpc = await startGrpcThread({
      host: config.host,
      port: config.grpcPort,
      maxReceiveBytes: config.maxRequestBytes,
      impl,
      log,
      clock,
      tokenSettings,
      cacheSize: config.verifyCacheSize,
      keyRing,
      revocations,
      onFailure(err) {
        // /healthz turns 503, so the orchestrator replaces this instance.
        serving = false;
        log.error("the gRPC thread failed; this instance stops reporting healthy", {
          error: errorSummary(err),
        });
      },
    });
    const grpcPort = grpc.port;
    cleanups.push(() => grpc.stop(5000));

    const http = createDualProtocolServer(
      createHttpHandler({
        service: IdentityService,
        impl,
        maxRequestBytes: config.maxRequestBytes,
        jwks: () => keyRing.jwks(),
        isServing: () => serving,
        sandbox,
      }),
    );
    await new Promise<void>((resolve, reject) => {
      http.server.once("error", reject);
      http.server.listen(config.httpPort, config.host, resolve);
    });
    httpPort = (http.server.address() as AddressInfo).port;
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          http.server.close(() => resolve());
          http.closeConnections();
        }),
    );

    serving = true;
    grpc.setServing(true);

    log.info("identity service started", {
      grpc: `${config.host}:${grpcPort}`,
      http: `${config.host}:${httpPort}`,
      database:
        database.kind === "pglite" ? `embedded PGlite in ${join(config.dataDir, "pglite")}` : "postgres",
      store: redis ? "redis" : "in-process (single instance only)",
      revokedSessions: revocations.size,
      wechat: sandbox
        ? `built-in sandbox at http://127.0.0.1:${httpPort}${SANDBOX_MOUNT} (app ${config.wechat.apps[0]?.appId})`
        : config.wechat.mode === "real"
          ? config.wechat.baseUrl
          : "",
      apps: config.wechat.apps.map((a) => a.appId),
    });
    if (sandbox) {
      log.warn(
        "running on the built-in WeChat sandbox: logins are simulated; set WECHAT_APP_ID and WECHAT_APP_SECRET for real ones",
      );
    }

    return {
      grpcPort,
      httpPort,
      sandbox,
      log,
      async stop() {
        serving = false;
        grpc.setServing(false);
        await cleanUp();
      },
    };
  } catch (err) {
    await cleanUp();
    throw err;
  }
}
