import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityError } from "../../src/domain/errors.js";
import type { KeyValueStore } from "../../src/domain/ports.js";
import { createSealer } from "../../src/domain/sealing.js";
import { startSandboxServer } from "../../src/sandbox/sandbox-server.js";
import { createMemoryKeyValueStore } from "../../src/store/memory/key-value-store.js";
import { connectRedis } from "../../src/store/redis/connection.js";
import { createRedisKeyValueStore } from "../../src/store/redis/key-value-store.js";
import { createWechatClient } from "../../src/wechat/client.js";
import { WECHAT_ERRCODES, wechatError } from "../../src/wechat/errcodes.js";
import { createAppAccessTokens } from "../../src/wechat-session/app-access-tokens.js";
import { redisTopologies } from "../helpers/backends.js";
import { movableClock } from "../helpers/clock.js";
import { uniqueName } from "../helpers/scratch-database.js";

const APP = { appId: "wxtokens00000001", appSecret: "secret-tokens" };

/**
 * The shared app access_token, with several instances (each its own AppAccessTokens and WeChat
 * client) on one store, against the sandbox over a socket: one fetch for all, renewal ahead of
 * expiry, and one forced refresh when WeChat rejects a token another party knocked out.
 */
function appAccessTokensContract(
  name: string,
  openStore: (clock: { now(): number }) => Promise<KeyValueStore>,
) {
  describe(`shared app access_token: ${name}`, () => {
    const clock = movableClock();
    let server: Awaited<ReturnType<typeof startSandboxServer>>;
    let instances: Array<ReturnType<typeof createAppAccessTokens>>;
    let clients: Array<ReturnType<typeof createWechatClient>>;
    beforeAll(async () => {
      server = await startSandboxServer({ apps: [APP], clock });
      const kv = await openStore(clock);
      const sealer = createSealer(randomBytes(32), "app-access-token");
      clients = [0, 1, 2].map(() => createWechatClient({ baseUrl: server.baseUrl, timeoutMs: 1000 }));
      instances = clients.map((wechat) =>
        createAppAccessTokens({ wechat, kv, sealer, clock, renewAheadMs: 4 * 60_000, wechatTimeoutMs: 1000 }),
      );
    });
    afterAll(async () => {
      for (const c of clients) c.close();
      await server.close();
    });

    /** The token a WeChat call of this instance would be made with. */
    const tokenOf = (instance: ReturnType<typeof createAppAccessTokens> | undefined) =>
      (instance as ReturnType<typeof createAppAccessTokens>).withToken(APP, async (token) => token);

    /** A WeChat API that takes the token: it answers 40001 for a token WeChat no longer accepts. */
    const callWechat = async (token: string) => {
      if (!server.sandbox.accessTokenValid(APP.appId, token)) {
        throw wechatError(WECHAT_ERRCODES.ACCESS_TOKEN_INVALID); // what the WeChat client makes of it
      }
      return token;
    };

    it("fetches one token for all instances, however many ask at once", async () => {
      server.sandbox.setLatency(50);
      const tokens = await Promise.all(Array.from({ length: 30 }, (_, i) => tokenOf(instances[i % 3])));
      server.sandbox.setLatency(0);
      expect(new Set(tokens).size).toBe(1);
      expect(server.sandbox.stats.stableTokenCalls).toBe(1);
      expect(server.sandbox.accessTokenValid(APP.appId, tokens[0] as string)).toBe(true);
    });

    it("renews ahead of expiry, once, while the old token still works", async () => {
      const before = await tokenOf(instances[0]);
      const calls = server.sandbox.stats.stableTokenCalls;
      // Inside our 4-minute renewal window, so inside WeChat's 5 minutes, when it issues the next token.
      clock.advance(7200_000 - 3 * 60_000);
      // One instance renews; the others, finding the lock taken, go on with the still-valid token.
      const during = await Promise.all(instances.map((i) => tokenOf(i)));
      for (const token of during) expect(server.sandbox.accessTokenValid(APP.appId, token)).toBe(true);
      expect(server.sandbox.stats.stableTokenCalls).toBe(calls + 1);
      const renewed = await Promise.all(instances.map((i) => tokenOf(i)));
      expect(new Set(renewed).size).toBe(1);
      expect(renewed[0]).not.toBe(before);
      expect(server.sandbox.stats.stableTokenCalls).toBe(calls + 1);
      expect(server.sandbox.stats.forcedRefreshes).toBe(0);
      expect(server.sandbox.accessTokenValid(APP.appId, before as string)).toBe(true); // both valid now
    });

    it("replaces a token knocked out by a forced refresh elsewhere: once, then retries the call", async () => {
      const mine = await tokenOf(instances[0]);
      await clients[0]?.stableToken(APP, true); // another service forces a new token
      expect(server.sandbox.accessTokenValid(APP.appId, mine as string)).toBe(false);
      const forcedBefore = server.sandbox.stats.forcedRefreshes;
      const answers = await Promise.all(instances.map((i) => i.withToken(APP, callWechat)));
      expect(new Set(answers).size).toBe(1);
      expect(server.sandbox.accessTokenValid(APP.appId, answers[0] as string)).toBe(true);
      expect(server.sandbox.stats.forcedRefreshes).toBe(forcedBefore + 1); // one instance refreshed
    });

    it("passes other failures through without refreshing", async () => {
      const forcedBefore = server.sandbox.stats.forcedRefreshes;
      const failing = async () => {
        throw new IdentityError("WECHAT_RATE_LIMITED", "limit", { wechat_errcode: "45011" });
      };
      await expect(instances[0]?.withToken(APP, failing)).rejects.toMatchObject({
        reason: "WECHAT_RATE_LIMITED",
      });
      expect(server.sandbox.stats.forcedRefreshes).toBe(forcedBefore);
    });

    it("reports WeChat's refusal of the app credentials as such", async () => {
      const wrong = { appId: APP.appId, appSecret: "wrong" };
      const fresh = createAppAccessTokens({
        wechat: clients[0] as ReturnType<typeof createWechatClient>,
        kv: createMemoryKeyValueStore(clock),
        sealer: createSealer(randomBytes(32), "app-access-token"),
        clock,
        renewAheadMs: 60_000,
        wechatTimeoutMs: 0,
      });
      await expect(fresh.withToken(wrong, async (token) => token)).rejects.toMatchObject({
        reason: "WECHAT_APP_REJECTED",
      });
    });
  });
}

appAccessTokensContract("in-process store", async (clock) => createMemoryKeyValueStore(clock));

for (const { name, topology } of redisTopologies()) {
  appAccessTokensContract(name, async () => {
    const redis = connectRedis(topology);
    await redis.connect();
    afterAll(() => redis.disconnect());
    return createRedisKeyValueStore(redis, `${uniqueName("at")}:`);
  });
}
