import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSealer } from "../../src/domain/sealing.js";
import { startSandboxServer } from "../../src/sandbox/sandbox-server.js";
import { createMemoryKeyValueStore } from "../../src/store/memory/key-value-store.js";
import { createWechatClient } from "../../src/wechat/client.js";
import { createCodeExchange } from "../../src/wechat-session/code-exchange.js";

const app = { appId: "wxexchange000001", appSecret: "s" };
let server: Awaited<ReturnType<typeof startSandboxServer>>;
beforeAll(async () => {
  server = await startSandboxServer({ apps: [app] });
});
afterAll(() => server.close());

function exchangeOn(
  kv: ReturnType<typeof createMemoryKeyValueStore>,
  sealer = createSealer(randomBytes(32), "c"),
) {
  return createCodeExchange({
    wechat: createWechatClient({ baseUrl: server.baseUrl, timeoutMs: 1000 }),
    kv,
    sealer,
    clock: { now: () => Date.now() },
    wechatTimeoutMs: 1000,
  });
}

/** What Login does with an attempt: the session it plans (made once per attempt), once remembered. */
async function tryLogin(exchange: ReturnType<typeof exchangeOn>, code: string, attemptId: string) {
  const attempt = await exchange.exchange(app, code, attemptId);
  const { plan, remembered } = attempt.planSession(() => ({
    sessionId: randomUUID(),
    refreshToken: randomUUID(),
    createdAt: Date.now(),
    idleExpiresAt: Date.now() + 60_000,
    absoluteExpiresAt: Date.now() + 120_000,
  }));
  await remembered;
  return { session: attempt.session, plan };
}

describe("code exchange", () => {
  it("calls WeChat once for concurrent tries of one attempt, which all plan the same session", async () => {
    server.sandbox.reset();
    server.sandbox.setLatency(50);
    const exchange = exchangeOn(createMemoryKeyValueStore());
    const { code } = server.sandbox.issueCode({ openid: "o-dup" });
    const results = await Promise.all(
      Array.from({ length: 20 }, () => tryLogin(exchange, code, "attempt-1")),
    );
    expect(new Set(results.map((r) => r.session.openid))).toEqual(new Set(["o-dup"]));
    expect(new Set(results.map((r) => r.plan.sessionId)).size).toBe(1);
    expect(server.sandbox.stats.code2SessionCalls).toBe(1);
    server.sandbox.setLatency(0);
  });

  it("answers a retry of the attempt after success with the same session, without calling WeChat again", async () => {
    server.sandbox.reset();
    const exchange = exchangeOn(createMemoryKeyValueStore());
    const { code } = server.sandbox.issueCode({ openid: "o-retry" });
    const first = await tryLogin(exchange, code, "attempt-1");
    const again = await tryLogin(exchange, code, "attempt-1");
    expect(again).toEqual(first);
    expect(server.sandbox.stats.code2SessionCalls).toBe(1);
  });

  it("refuses the code to anyone else: another attempt, or none, is CODE_USED", async () => {
    server.sandbox.reset();
    const exchange = exchangeOn(createMemoryKeyValueStore());
    const { code } = server.sandbox.issueCode({ openid: "o-once" });
    await tryLogin(exchange, code, "attempt-1");
    await expect(exchange.exchange(app, code, "attempt-2")).rejects.toMatchObject({ reason: "CODE_USED" });
    await expect(exchange.exchange(app, code, "")).rejects.toMatchObject({ reason: "CODE_USED" });
    // Also while the first try is still waiting for WeChat.
    server.sandbox.setLatency(100);
    const { code: slow } = server.sandbox.issueCode({ openid: "o-slow" });
    const first = tryLogin(exchange, slow, "a");
    await expect(exchange.exchange(app, slow, "b")).rejects.toMatchObject({ reason: "CODE_USED" });
    await expect(exchange.exchange(app, slow, "")).rejects.toMatchObject({ reason: "CODE_USED" });
    expect((await first).session.openid).toBe("o-slow");
    server.sandbox.setLatency(0);
    expect(server.sandbox.stats.code2SessionCalls).toBe(2);
  });

  it("shares one attempt between instances through the store, without storing the code or session_key in clear", async () => {
    server.sandbox.reset();
    server.sandbox.setLatency(100);
    const kv = createMemoryKeyValueStore();
    const sealer = createSealer(randomBytes(32), "c");
    const [a, b] = [exchangeOn(kv, sealer), exchangeOn(kv, sealer)];
    const { code } = server.sandbox.issueCode({ openid: "o-two" });
    const [ra, rb] = await Promise.all([tryLogin(a, code, "attempt-1"), tryLogin(b, code, "attempt-1")]);
    expect(ra).toEqual(rb);
    expect(server.sandbox.stats.code2SessionCalls).toBe(1);
    server.sandbox.setLatency(0);
    const stored = await kv.get(
      `code:${app.appId}:${(await import("node:crypto")).createHash("sha256").update(code).digest("base64url")}`,
    );
    expect(stored).toBeTruthy();
    expect(stored).not.toContain(ra.session.sessionKey);
    expect(stored).not.toContain(ra.plan.refreshToken);
    expect(stored).not.toContain(code);
  });

  it("forgets a failed exchange so the next try gets WeChat's own answer", async () => {
    server.sandbox.reset();
    const exchange = exchangeOn(createMemoryKeyValueStore());
    server.sandbox.failNext("http500");
    const { code } = server.sandbox.issueCode({ openid: "o-fail" });
    await expect(exchange.exchange(app, code, "attempt-1")).rejects.toMatchObject({
      reason: "WECHAT_UNAVAILABLE",
    });
    expect((await exchange.exchange(app, code, "attempt-1")).session.openid).toBe("o-fail");
  });
});
