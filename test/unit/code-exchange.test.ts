import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Code2SessionResult } from "../../src/domain/ports.js";
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

describe("code exchange", () => {
  it("calls WeChat once for concurrent duplicates of one code", async () => {
    server.sandbox.reset();
    server.sandbox.setLatency(50);
    const exchange = exchangeOn(createMemoryKeyValueStore());
    const { code } = server.sandbox.issueCode({ openid: "o-dup" });
    const results = await Promise.all(Array.from({ length: 20 }, () => exchange.exchange(app, code)));
    expect(new Set(results.map((r) => r.session.openid))).toEqual(new Set(["o-dup"]));
    expect(server.sandbox.stats.code2SessionCalls).toBe(1);
    server.sandbox.setLatency(0);
  });

  it("answers a retry after success without calling WeChat again", async () => {
    server.sandbox.reset();
    const exchange = exchangeOn(createMemoryKeyValueStore());
    const { code } = server.sandbox.issueCode({ openid: "o-retry" });
    const first = await exchange.exchange(app, code);
    await first.remembered;
    const again = await exchange.exchange(app, code);
    expect(again.session).toEqual(first.session);
    expect(server.sandbox.stats.code2SessionCalls).toBe(1);
  });

  it("shares one exchange between instances through the store, without storing the code or session_key in clear", async () => {
    server.sandbox.reset();
    server.sandbox.setLatency(100);
    const kv = createMemoryKeyValueStore();
    const sealer = createSealer(randomBytes(32), "c");
    const [a, b] = [exchangeOn(kv, sealer), exchangeOn(kv, sealer)];
    const { code } = server.sandbox.issueCode({ openid: "o-two" });
    const [ra, rb] = (await Promise.all([a.exchange(app, code), b.exchange(app, code)])).map(
      (r) => r.session,
    ) as [Code2SessionResult, Code2SessionResult];
    expect(ra).toEqual(rb);
    expect(server.sandbox.stats.code2SessionCalls).toBe(1);
    server.sandbox.setLatency(0);
    const stored = await kv.get(
      `code:${app.appId}:${(await import("node:crypto")).createHash("sha256").update(code).digest("base64url")}`,
    );
    expect(stored).toBeTruthy();
    expect(stored).not.toContain(ra.sessionKey);
    expect(stored).not.toContain(code);
  });

  it("forgets a failed exchange so the next attempt gets WeChat's own answer", async () => {
    server.sandbox.reset();
    const exchange = exchangeOn(createMemoryKeyValueStore());
    server.sandbox.failNext("http500");
    const { code } = server.sandbox.issueCode({ openid: "o-fail" });
    await expect(exchange.exchange(app, code)).rejects.toMatchObject({ reason: "WECHAT_UNAVAILABLE" });
    expect((await exchange.exchange(app, code)).session.openid).toBe("o-fail");
  });
});
