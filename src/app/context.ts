import type { SpanExporter } from "@opentelemetry/sdk-trace";
import type { Config } from "../config.js";
import { type SharedClock, sharedClock } from "../domain/ports.js";
import { AdminService } from "../gen/identity/v1/admin_pb.js";
import { IdentityService } from "../gen/identity/v1/identity_pb.js";
import type { UseCases } from "../identity/use-cases.js";
import { createReplicaFeed, type ReplicaFeed } from "../identity/verify-token-replica.js";
import { createLogger, type Logger } from "../observability/logger.js";
import { createMetrics, type Metrics, registerRevocationSubscribers } from "../observability/metrics.js";
import { createTracing, type Tracing } from "../observability/tracing.js";
import { createRevocationStream, type RevocationStream } from "../revocation/revocation-stream.js";
import type { Revocations } from "../revocation/revocations.js";
import { createWechatSandbox, type WechatSandbox } from "../sandbox/sandbox.js";
import type { KeyRing } from "../signing-keys/key-ring.js";
import { dependency, guardPort } from "../store/guard-port.js";
import { createPgAccountStore } from "../store/pg/account-store.js";
import { type DatabaseHandle, openDatabase } from "../store/pg/database.js";
import { createPgSessionStore } from "../store/pg/session-store.js";
import { createPgSigningKeyStore } from "../store/pg/signing-key-store.js";
import { createPgUserStore } from "../store/pg/user-store.js";
import { describeRedis } from "../store/redis/connection.js";
import { createAdminServiceImpl } from "../transport/admin-service/admin-service.js";
import { type HttpRoute, loopbackOnly } from "../transport/http/http-handler.js";
import { createIdentityServiceImpl } from "../transport/identity-service/identity-service.js";
import { type MountedService, mount } from "../transport/mounted-service.js";
import { describeUrl, openAtStart } from "../util/open-at-start.js";
import { createWechatClient } from "../wechat/client.js";
import { createIdentityServices } from "./identity-services.js";
import { keyEncryptionKey } from "./key-encryption-key.js";
import { openSharedStorage, type SharedStorage } from "./shared-storage.js";

/** Where the built-in WeChat sandbox is mounted on the HTTP port. */
export const SANDBOX_MOUNT = "/sandbox";

/** What tests may replace; production passes nothing. */
export interface AppOverrides {
  /** Shared, so that the gRPC thread reads the same time. */
  clock?: SharedClock;
  log?: Logger;
  /** Traces to this exporter (tests: the in-memory one), whatever OTEL_TRACES_EXPORTER says. */
  spanExporter?: SpanExporter;
}

/** Everything the servers need, built once from the config. */
export interface AppContext {
  config: Readonly<Config>;
  log: Logger;
  /** This instance's Prometheus metrics (the gRPC thread's are added at each scrape). */
  metrics: Metrics;
  /** Traces on: the main thread's tracer (the gRPC thread makes its own from config.tracing). */
  tracing: Tracing;
  /** What readiness needs of the dependencies: each check's state now (true: fine). */
  dependencyChecks(): Record<string, boolean>;
  clock: SharedClock;
  database: DatabaseHandle;
  storage: SharedStorage;
  keyRing: KeyRing;
  revocations: Revocations;
  useCases: UseCases;
  /** IdentityService and AdminService, mounted on both ports. */
  services: MountedService[];
  /** What the gRPC thread's VerifyToken replica is fed from. */
  replicaFeed: ReplicaFeed;
  /** WatchRevocations on the HTTP port (the gRPC thread streams from its replica); closed at the drain. */
  revocationStream: RevocationStream;
  /** The built-in WeChat stand-in, when no WeChat credentials are configured. */
  sandbox: WechatSandbox | undefined;
  /** HTTP endpoints to mount beside the service (the sandbox's). */
  routes: HttpRoute[];
  /** Tells the context where its HTTP port answers: the built-in sandbox is reached there. */
  listeningAt(httpBaseUrl: string): void;
  /** Stops the background work and closes every connection, in the reverse order of opening. */
  close(): Promise<void>;
}

/** The one place that wires the service: config in, an app context out (no server started). */
export async function createAppContext(
  config: Readonly<Config>,
  overrides: AppOverrides = {},
): Promise<AppContext> {
  const log = overrides.log ?? createLogger(config.logLevel);
  const metrics = createMetrics();
  const tracing = createTracing(config.tracing, overrides.spanExporter);
  const { tracer } = tracing;
  const clock = overrides.clock ?? sharedClock();
  const cleanups: Array<() => unknown> = [() => tracing.shutdown()];
  const close = async () => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => {});
    cleanups.length = 0;
  };

  try {
    // First: a key file that cannot be read stops the start before anything is opened.
    const kek = await keyEncryptionKey(config, log);
    // A dependency still starting (containers come up together) is waited for, named in the log.
    const startup = { timeoutMs: config.startupTimeoutMs, log };
    const openAndMigrate = async () => {
      const opened = await openDatabase(config);
      try {
        await opened.migrate();
        return opened;
      } catch (err) {
        await opened.close().catch(() => {});
        throw err;
      }
    };
    const database = config.databaseUrl
      ? await openAtStart(`Postgres at ${describeUrl(config.databaseUrl)}`, openAndMigrate, {
          ...startup,
          retryable: isPostgresUnreachable,
        })
      : await openAndMigrate();
    cleanups.push(() => database.close());
    const storage = config.redis
      ? await openAtStart(
          describeRedis(config.redis),
          () => openSharedStorage(config, { clock, log, metrics, tracer }),
          startup,
        )
      : await openSharedStorage(config, { clock, log, metrics, tracer });
    cleanups.push(() => storage.close());

    // No WeChat credentials: the built-in sandbox, mounted on the HTTP port, for loopback callers
    // unless told otherwise.
    let sandbox: WechatSandbox | undefined;
    const routes: HttpRoute[] = [];
    if (config.wechat.mode === "sandbox") {
      sandbox = createWechatSandbox({ apps: config.wechat.apps, clock });
      const handle = config.wechat.allowRemote ? sandbox.handle : loopbackOnly(sandbox.handle);
      routes.push({ prefix: SANDBOX_MOUNT, handle });
    }
    let httpBaseUrl = "";
    const wechat = createWechatClient({
      baseUrl: config.wechat.mode === "real" ? config.wechat.baseUrl : () => `${httpBaseUrl}${SANDBOX_MOUNT}`,
      timeoutMs: config.wechat.timeoutMs,
      observe(endpoint, errcode, seconds) {
        metrics.wechatRequests.inc({ endpoint, errcode });
        metrics.wechatDuration.observe({ endpoint }, seconds);
      },
      tracer,
    });
    cleanups.push(() => wechat.close());

    // Every Postgres port shares one cap on the calls waiting for it, and one breaker.
    const postgres = dependency("postgres", {
      maxInFlight: config.storageMaxInFlight,
      log,
      observe: metrics.dependencyObserver("postgres"),
      tracer,
    });
    metrics.watchDependency(postgres);
    cleanups.push(() => postgres.close());
    const { keyRing, revocations, useCases, stop } = await createIdentityServices({
      config,
      clock,
      log,
      keyEncryptionKey: kek,
      sessions: guardPort(
        createPgSessionStore(database.db, { maxAccessTokenTtlMs: config.tokens.accessTokenTtlMs }),
        postgres,
      ),
      users: guardPort(createPgUserStore(database.db), postgres),
      accounts: guardPort(
        createPgAccountStore(database.db, { maxAccessTokenTtlMs: config.tokens.accessTokenTtlMs }),
        postgres,
      ),
      signingKeys: guardPort(createPgSigningKeyStore(database.db), postgres),
      kv: storage.kv,
      broadcast: storage.broadcast,
      rateLimiter: storage.rateLimiter,
      wechat,
      metrics,
    });
    cleanups.push(stop);

    const replicaFeed = createReplicaFeed(keyRing, revocations);
    const revocationStream = createRevocationStream(replicaFeed, { maxQueued: config.watchMaxBehind });
    registerRevocationSubscribers(metrics.registry, () => revocationStream.subscribers);
    cleanups.push(() => revocationStream.close());
    const dependencies = [postgres, ...(storage.dependency ? [storage.dependency] : [])];
    return {
      config,
      log,
      metrics,
      tracing,
      dependencyChecks() {
        const checks: Record<string, boolean> = {};
        for (const d of dependencies) checks[d.backend] = !d.unreachable;
        try {
          keyRing.signingKey();
          checks.signingKeys = true;
        } catch {
          checks.signingKeys = false;
        }
        return checks;
      },
      clock,
      database,
      storage,
      keyRing,
      revocations,
      useCases,
      services: [
        mount(
          IdentityService,
          createIdentityServiceImpl(useCases, log, {
            defaultTimeoutMs: config.requestTimeoutMs,
            verifyCacheBytes: config.verifyCacheBytes,
            revocationStream,
            metrics,
            tracer,
          }),
        ),
        mount(
          AdminService,
          createAdminServiceImpl(useCases.admin, log, {
            defaultTimeoutMs: config.requestTimeoutMs,
            metrics,
            tracer,
          }),
        ),
      ],
      replicaFeed,
      revocationStream,
      sandbox,
      routes,
      listeningAt(url) {
        httpBaseUrl = url;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Postgres not (yet) there: refused, unresolvable, timed out, or still starting up (57P03). */
function isPostgresUnreachable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    typeof code === "string" &&
    [
      "ECONNREFUSED",
      "ENOTFOUND",
      "EAI_AGAIN",
      "ETIMEDOUT",
      "ECONNRESET",
      "CONNECT_TIMEOUT",
      "57P03",
    ].includes(code)
  );
}
