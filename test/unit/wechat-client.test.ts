import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { IdentityError } from "../../src/domain/errors.js";
import { startSandboxServer } from "../../src/sandbox/sandbox-server.js";
import { createWechatClient } from "../../src/wechat/client.js";

const app = { appId: "wxclienttest0001", appSecret: "very-secret-app-secret" };
let server: Awaited<ReturnType<typeof startSandboxServer>>;
let now = Date.now();
const clock = { now: () => now };

beforeAll(async () => {
  server = await startSandboxServer({ apps: [app], clock });
});
afterAll(() => server.close());
beforeEach(() => {
  server.sandbox.reset();
  now = Date.now();
});

const client = () => createWechatClient({ baseUrl: server.baseUrl, timeoutMs: 300, retryJitterMs: 10 });

async function failure(promise: Promise<unknown>): Promise<IdentityError> {
  const err = await promise.then(
    () => {
      throw new Error("expected a failure");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(IdentityError);
  const identityError = err as IdentityError;
  // Whatever went wrong, the app secret and the code never appear in what we report.
  expect(JSON.stringify({ m: identityError.message, d: identityError.metadata })).not.toContain(
    app.appSecret,
  );
  return identityError;
}

describe("WeChat client against the sandbox", () => {
  it("exchanges a code for openid, session_key and unionid", async () => {
    const { code } = server.sandbox.issueCode({ openid: "o-alice", unionid: "u-alice" });
    const result = await client().code2Session(app, code);
    expect(result).toEqual({
      openid: "o-alice",
      unionid: "u-alice",
      sessionKey: server.sandbox.sessionKeyOf(app.appId, "o-alice"),
    });
  });

  it("has no unionid when WeChat gives none", async () => {
    const { code } = server.sandbox.issueCode({ openid: "o-bob" });
    expect((await client().code2Session(app, code)).unionid).toBeNull();
  });

  it("gets CODE_USED for a second exchange (codes are single-use)", async () => {
    const { code } = server.sandbox.issueCode();
    await client().code2Session(app, code);
    expect((await failure(client().code2Session(app, code))).reason).toBe("CODE_USED");
  });

  it("gets INVALID_CODE for an unknown code and for one older than five minutes", async () => {
    expect((await failure(client().code2Session(app, "nope"))).reason).toBe("INVALID_CODE");
    const { code } = server.sandbox.issueCode();
    now += 5 * 60 * 1000 + 1;
    expect((await failure(client().code2Session(app, code))).reason).toBe("INVALID_CODE");
  });

  it("URL-encodes the code", async () => {
    const err = await failure(client().code2Session(app, "a+b&secret=x#y"));
    expect(err.reason).toBe("INVALID_CODE");
  });

  it("reports wrong credentials as WECHAT_APP_REJECTED without leaking the secret", async () => {
    const { code } = server.sandbox.issueCode();
    const err = await failure(client().code2Session({ ...app, appSecret: "wrong" }, code));
    expect(err.reason).toBe("WECHAT_APP_REJECTED");
    expect((await failure(client().code2Session({ ...app, appId: "wxunknown" }, code))).reason).toBe(
      "WECHAT_APP_REJECTED",
    );
  });

  it.each([
    [40029, "INVALID_CODE"],
    [40163, "CODE_USED"],
    [45011, "WECHAT_RATE_LIMITED"],
    [40226, "HIGH_RISK_USER"],
    [40013, "WECHAT_APP_REJECTED"],
    [99999, "WECHAT_UNAVAILABLE"],
  ])("maps errcode %i to %s", async (errcode, reason) => {
    server.sandbox.failNext(errcode);
    const { code } = server.sandbox.issueCode();
    const err = await failure(client().code2Session(app, code));
    expect(err.reason).toBe(reason);
    expect(err.metadata.wechat_errcode).toBe(String(errcode));
  });

  it("retries errcode -1 once, and succeeds when WeChat recovers", async () => {
    server.sandbox.failNext(-1);
    const { code } = server.sandbox.issueCode({ openid: "o-retry" });
    expect((await client().code2Session(app, code)).openid).toBe("o-retry");
    expect(server.sandbox.stats.code2SessionCalls).toBe(2);
  });

  it("gives up after a second -1 with WECHAT_UNAVAILABLE", async () => {
    server.sandbox.failNext(-1, 2);
    const { code } = server.sandbox.issueCode();
    expect((await failure(client().code2Session(app, code))).reason).toBe("WECHAT_UNAVAILABLE");
    expect(server.sandbox.stats.code2SessionCalls).toBe(2);
  });

  it.each([
    ["http500", /HTTP status 500/],
    ["malformed", /malformed/],
    ["hang", /no answer within 300 ms/],
  ] as const)("reports %s as WECHAT_UNAVAILABLE, without retrying", async (fault, message) => {
    server.sandbox.failNext(fault);
    const { code } = server.sandbox.issueCode();
    const err = await failure(client().code2Session(app, code));
    expect(err.reason).toBe("WECHAT_UNAVAILABLE");
    expect(err.message).toMatch(message);
  });

  it("reports a refused connection as WECHAT_UNAVAILABLE", async () => {
    const down = createWechatClient({ baseUrl: "http://127.0.0.1:1", timeoutMs: 300 });
    expect((await failure(down.code2Session(app, "abc"))).reason).toBe("WECHAT_UNAVAILABLE");
  });

  it("applies configured latency", async () => {
    server.sandbox.setLatency(500);
    const { code } = server.sandbox.issueCode();
    expect((await failure(client().code2Session(app, code))).message).toMatch(/no answer/);
  });

  it("takes faults and codes over HTTP too", async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${server.baseUrl}${path}`, { method: "POST", body: JSON.stringify(body) }).then((r) => r.json());
    expect(await post("/faults", { fault: 45011 })).toEqual({ queued: 1 });
    const { code } = (await post("/login", { openid: "o-http" })) as { code: string };
    expect((await failure(client().code2Session(app, code))).reason).toBe("WECHAT_RATE_LIMITED");
    expect((await client().code2Session(app, code)).openid).toBe("o-http");
    const bad = await fetch(`${server.baseUrl}/faults`, { method: "POST", body: '{"fault":"explode"}' });
    expect(bad.status).toBe(400);
  });
});

describe("WeChat client keep-alive", () => {
  it("resends once when a reused connection was closed by the server before reading the request", async () => {
    const { createServer } = await import("node:http");
    let requests = 0;
    // Answers the first request, then drops the kept-alive connection as the next one arrives.
    const flaky = createServer((req, res) => {
      requests++;
      if (requests === 2) {
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ openid: `o${requests}`, session_key: "k" }));
    });
    await new Promise<void>((resolve) => flaky.listen(0, "127.0.0.1", resolve));
    const { port } = flaky.address() as { port: number };
    const wechat = createWechatClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 1000 });
    expect((await wechat.code2Session(app, "c1")).openid).toBe("o1");
    expect((await wechat.code2Session(app, "c2")).openid).toBe("o3");
    expect(requests).toBe(3);
    wechat.close();
    flaky.close();
  });
});
