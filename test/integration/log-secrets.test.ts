import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/observability/logger.js";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { BACKENDS, type LogLine, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
const KEK = Buffer.alloc(32, 7).toString("base64");

/**
 * The service's own logger (pino, debug level, redaction on) writing to memory, while calls fail
 * in every way a caller or a dependency can make them fail: no secret may reach a line.
 */
describe.each(BACKENDS)("secrets and the log (%s backends)", (backend) => {
  let t: TestApp;
  const written: string[] = [];
  /** Every secret the calls below handle. */
  const secrets = new Set<string>([KEK, ...TEST_APPS.map((a) => a.appSecret)]);
  const keep = <T extends string | undefined>(secret: T): T => {
    if (secret) secrets.add(secret);
    return secret;
  };
  beforeAll(async () => {
    const log = Object.assign(createLogger("debug", { write: (line) => void written.push(line) }), {
      lines: [] as LogLine[],
    });
    // No reuse grace: a refresh token presented twice is reuse at once (a failure path of its own).
    t = await startTestApp(backend, { LOG_LEVEL: "debug", REFRESH_TOKEN_REUSE_GRACE: "0" }, { log });
  });
  afterAll(() => t.stop());

  const code = () => keep(t.sandbox.issueCode({ appId: APP.appId }).code);
  const login = async () => {
    const issued = t.sandbox.issueCode({ appId: APP.appId });
    keep(issued.code);
    const { tokens, user } = await t.connect.login({ appId: APP.appId, code: issued.code });
    keep(tokens?.accessToken);
    keep(tokens?.refreshToken);
    keep(t.sandbox.sessionKeyOf(APP.appId, issued.openid));
    return { accessToken: tokens?.accessToken as string, refreshToken: tokens?.refreshToken as string, user };
  };

  it("writes none of them on any failure path", async () => {
    // WeChat failing every way it can, on both ports.
    for (const fault of ["http500", "malformed", -1, 40029, 40163, 40226, 45011] as const) {
      t.sandbox.failNext(fault, fault === -1 ? 2 : 1);
      await connectFailure(t.connect.login({ appId: APP.appId, code: code() }));
      t.sandbox.failNext(fault, fault === -1 ? 2 : 1);
      await grpcFailure(t.grpc.call("login", { appId: APP.appId, code: code() }));
    }
    t.sandbox.failNext("hang");
    await connectFailure(t.connect.login({ appId: APP.appId, code: code() }));
    await connectFailure(t.connect.login({ appId: "wxunknown", code: code() }));
    const used = code();
    await t.connect.login({ appId: APP.appId, code: used });
    await connectFailure(t.connect.login({ appId: APP.appId, code: used }));

    // Tokens: garbage, tampered, revoked, a refresh token reused.
    const first = await login();
    await connectFailure(t.connect.verifyToken({ accessToken: keep(`${first.accessToken}x`) }));
    await grpcFailure(t.grpc.call("verifyToken", { accessToken: keep("eyJhbGciOiJFUzI1NiJ9.e30.c2ln") }));
    const rotated = await t.connect.refresh({ refreshToken: first.refreshToken });
    keep(rotated.tokens?.accessToken);
    keep(rotated.tokens?.refreshToken);
    await connectFailure(t.connect.refresh({ refreshToken: first.refreshToken }));
    await connectFailure(t.connect.refresh({ refreshToken: keep("rt_not-a-refresh-token-at-all") }));
    const second = await login();
    await t.connect.logout({ refreshToken: second.refreshToken });
    await connectFailure(t.connect.verifyToken({ accessToken: second.accessToken }));

    // What a logged-in user sends: sealed data, a phone code, WeChat failing behind them.
    const third = await login();
    await connectFailure(
      t.connect.decryptUserData({
        accessToken: third.accessToken,
        encryptedData: keep("c2VjcmV0LXVzZXItZGF0YS1ibG9i"),
        iv: keep("aXYtaXYtaXYtaXYtaXYtaQ=="),
      }),
    );
    await connectFailure(
      t.connect.getPhoneNumber({ accessToken: third.accessToken, phoneCode: keep("bad-phone-code") }),
    );
    t.sandbox.failNext("http500");
    await connectFailure(
      t.connect.getPhoneNumber({
        accessToken: third.accessToken,
        phoneCode: keep(
          t.sandbox.issuePhoneCode({ appId: APP.appId, openid: third.user?.openid as string }).code,
        ),
      }),
    );

    // Passwords: an unknown account and a wrong password answer alike, and neither is written.
    await connectFailure(
      t.connect.loginWithPassword({ username: "nobody", password: keep("hunter2-but-longer") }),
    );
    await connectFailure(
      t.connect.linkIdentity({
        accessToken: third.accessToken,
        proof: { case: "password", value: { username: "x", password: keep("short") } },
      }),
    );

    const text = written.join("");
    // The failures were logged (the test would pass on a silent log otherwise)...
    expect(text).toContain('"msg":"dependency failure"');
    expect(text).toContain('"reason":"WECHAT_UNAVAILABLE"');
    expect(written.filter((line) => line.includes('"level":"debug"')).length).toBeGreaterThan(20);
    // ...and none of what they handled.
    const leaked = [...secrets].filter((secret) => secret.length >= 5 && text.includes(secret));
    expect(leaked).toEqual([]);
  });
});
