import { randomUUID } from "node:crypto";
import { createIdentityServices, type IdentityServices } from "../../src/app/identity-services.js";
import { type Config, parseConfig, type RawEnv } from "../../src/config.js";
import type { WechatSandbox } from "../../src/sandbox/sandbox.js";
import { startSandboxServer } from "../../src/sandbox/sandbox-server.js";
import { createMemoryAccountStore } from "../../src/store/memory/account-store.js";
import { createMemoryBroadcast } from "../../src/store/memory/broadcast.js";
import { createMemoryKeyValueStore } from "../../src/store/memory/key-value-store.js";
import { createMemoryDatabase, type MemoryDatabase } from "../../src/store/memory/memory-database.js";
import { createMemorySessionStore } from "../../src/store/memory/session-store.js";
import { createMemorySigningKeyStore } from "../../src/store/memory/signing-key-store.js";
import { createMemoryUserStore } from "../../src/store/memory/user-store.js";
import { createRateLimiter } from "../../src/store/rate-limiter.js";
import { createWechatClient } from "../../src/wechat/client.js";
import { movableClock } from "./clock.js";
import { memoryLogger, TEST_APPS } from "./test-app.js";

export interface UseCaseWorld extends IdentityServices {
  config: Readonly<Config>;
  clock: ReturnType<typeof movableClock>;
  /** The in-memory tables behind the stores, to look at or to change as an administrator would. */
  db: MemoryDatabase;
  sandbox: WechatSandbox;
  log: ReturnType<typeof memoryLogger>;
  /** A wx.login() code for the user (a new user unless `openid` is given), and a Login with it. */
  login(openid?: string): ReturnType<IdentityServices["useCases"]["login"]>;
  close(): Promise<void>;
}

/**
 * The use cases exactly as the service wires them (createIdentityServices), on the in-memory
 * stores and a movable clock, with the real WeChat client talking to a sandbox over loopback:
 * the use cases' rules, tested in milliseconds.
 */
export async function createUseCaseWorld(env: RawEnv = {}): Promise<UseCaseWorld> {
  const wechatServer = await startSandboxServer({ apps: TEST_APPS });
  const config = parseConfig({
    WECHAT_APPS: JSON.stringify(TEST_APPS),
    WECHAT_API_BASE_URL: wechatServer.baseUrl,
    WECHAT_TIMEOUT_MS: "1000",
    ...env,
  });
  const clock = movableClock();
  const log = memoryLogger();
  const db = createMemoryDatabase();
  const wechat = createWechatClient({ baseUrl: wechatServer.baseUrl, timeoutMs: config.wechat.timeoutMs });
  const broadcast = createMemoryBroadcast();
  const services = await createIdentityServices({
    config,
    clock,
    log,
    keyEncryptionKey: Buffer.alloc(32, 7),
    sessions: createMemorySessionStore(db, { maxAccessTokenTtlMs: config.tokens.accessTokenTtlMs }),
    users: createMemoryUserStore(db),
    accounts: createMemoryAccountStore(db, { maxAccessTokenTtlMs: config.tokens.accessTokenTtlMs }),
    signingKeys: createMemorySigningKeyStore(),
    kv: createMemoryKeyValueStore(clock),
    broadcast,
    wechat,
    rateLimiter: (limit) => createRateLimiter(limit, { prefix: "use-cases:" }),
  });
  const appId = TEST_APPS[0]?.appId as string;
  return {
    ...services,
    config,
    clock,
    db,
    sandbox: wechatServer.sandbox,
    log,
    login(openid) {
      const { code } = wechatServer.sandbox.issueCode({ appId, openid });
      return services.useCases.login({
        appId,
        code,
        attemptId: randomUUID(),
        client: { ip: "", userAgent: "", deviceId: "" },
      });
    },
    async close() {
      services.stop();
      wechat.close();
      await broadcast.close();
      await wechatServer.close();
    },
  };
}
