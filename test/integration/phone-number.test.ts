import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REAL_DATABASE_URL, REAL_REDIS_URL } from "../helpers/backends.js";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

/** Logs a user in on `on` with a code from `sandboxOf` (the WeChat that instance talks to). */
async function login(on: TestApp, sandboxOf: TestApp = on) {
  const issued = sandboxOf.sandbox.issueCode({ appId: APP.appId });
  const response = await on.connect.login({ appId: APP.appId, code: issued.code });
  return {
    accessToken: response.tokens?.accessToken as string,
    openid: issued.openid,
    loginCode: issued.code,
  };
}

/** What another service sharing the app does to the app's access_token: a forced refresh. */
async function forceRefreshElsewhere(t: TestApp) {
  const response = await fetch(`${t.sandboxUrl}/cgi-bin/stable_token`, {
    method: "POST",
    body: JSON.stringify({
      grant_type: "client_credential",
      appid: APP.appId,
      secret: APP.appSecret,
      force_refresh: true,
    }),
  });
  expect(((await response.json()) as { access_token?: string }).access_token).toBeTruthy();
}

describe.each(BACKENDS)("GetPhoneNumber (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend);
  });
  afterAll(() => t.stop());

  it("returns the number behind a getPhoneNumber code, over Connect and gRPC; Login needs no app access_token", async () => {
    const tokenCallsBefore = t.sandbox.stats.stableTokenCalls;
    const user = await login(t);
    expect(t.sandbox.stats.stableTokenCalls).toBe(tokenCallsBefore);

    const { code } = t.sandbox.issuePhoneCode({
      appId: APP.appId,
      openid: user.openid,
      phoneNumber: "+86 13912345678",
    });
    expect(await t.connect.getPhoneNumber({ accessToken: user.accessToken, phoneCode: code })).toMatchObject({
      phoneNumber: "+86 13912345678",
      purePhoneNumber: "13912345678",
      countryCode: "86",
    });
    const second = t.sandbox.issuePhoneCode({ appId: APP.appId, openid: user.openid });
    const overGrpc = await t.grpc.call("getPhoneNumber", {
      accessToken: user.accessToken,
      phoneCode: second.code,
    });
    expect(overGrpc.purePhoneNumber).toBe("13800138000");
  });

  it("binds the number to the user when asked, and only then", async () => {
    const issued = t.sandbox.issueCode({ appId: APP.appId });
    const first = await t.connect.login({ appId: APP.appId, code: issued.code });
    const accessToken = first.tokens?.accessToken as string;
    expect(first.user?.phoneNumber).toBe("");
    const ask = (phoneNumber: string, bind: boolean) =>
      t.connect.getPhoneNumber({
        accessToken,
        phoneCode: t.sandbox.issuePhoneCode({ appId: APP.appId, openid: issued.openid, phoneNumber }).code,
        bind,
      });
    const relogin = async () =>
      (
        await t.connect.login({
          appId: APP.appId,
          code: t.sandbox.issueCode({ appId: APP.appId, openid: issued.openid }).code,
        })
      ).user?.phoneNumber;
    await ask("+86 13700000001", false);
    expect(await relogin()).toBe("");
    await ask("+86 13700000002", true);
    expect(await relogin()).toBe("+86 13700000002");
  });

  it("says a wx.login code is not a phone code; refuses used codes and other users' codes", async () => {
    const user = await login(t);
    const other = await login(t);
    const notAPhoneCode = await connectFailure(
      t.connect.getPhoneNumber({ accessToken: user.accessToken, phoneCode: other.loginCode }),
    );
    expect(notAPhoneCode).toMatchObject({
      code: Code.InvalidArgument,
      reason: "INVALID_PHONE_CODE",
      field: "phone_code",
    });
    expect(notAPhoneCode.message).toMatch(/getPhoneNumber button.*not a wx\.login\(\) code/);

    const { code } = t.sandbox.issuePhoneCode({ appId: APP.appId, openid: user.openid });
    await t.connect.getPhoneNumber({ accessToken: user.accessToken, phoneCode: code });
    expect(
      await grpcFailure(t.grpc.call("getPhoneNumber", { accessToken: user.accessToken, phoneCode: code })),
    ).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      reason: "INVALID_PHONE_CODE",
    });
    const othersCode = t.sandbox.issuePhoneCode({ appId: APP.appId, openid: other.openid });
    expect(
      await connectFailure(
        t.connect.getPhoneNumber({ accessToken: user.accessToken, phoneCode: othersCode.code }),
      ),
    ).toMatchObject({ reason: "INVALID_PHONE_CODE" });
    expect(
      await connectFailure(t.connect.getPhoneNumber({ accessToken: user.accessToken, phoneCode: "" })),
    ).toMatchObject({
      code: Code.InvalidArgument,
      field: "phone_code",
    });
  });

  it("reports WeChat's failures on demand as such, never as a bad code", async () => {
    const user = await login(t);
    const phoneCode = () => t.sandbox.issuePhoneCode({ appId: APP.appId, openid: user.openid }).code;
    await t.connect.getPhoneNumber({ accessToken: user.accessToken, phoneCode: phoneCode() }); // token cached
    for (const [fault, code, reason] of [
      [45011, Code.ResourceExhausted, "WECHAT_RATE_LIMITED"],
      [-1, Code.Unavailable, "WECHAT_UNAVAILABLE"],
      ["http500", Code.Unavailable, "WECHAT_UNAVAILABLE"],
      ["malformed", Code.Unavailable, "WECHAT_UNAVAILABLE"],
    ] as const) {
      t.sandbox.failNext(fault);
      expect(
        await connectFailure(
          t.connect.getPhoneNumber({ accessToken: user.accessToken, phoneCode: phoneCode() }),
        ),
        String(fault),
      ).toMatchObject({ code, reason });
    }
    // And the token fetch itself failing: the next instance to ask fetches again.
    const fresh = await startTestApp(backend, { WECHAT_API_BASE_URL: t.sandboxUrl });
    try {
      const other = await login(fresh, t);
      t.sandbox.failNext(40013);
      expect(
        await connectFailure(
          fresh.connect.getPhoneNumber({
            accessToken: other.accessToken,
            phoneCode: t.sandbox.issuePhoneCode({ appId: APP.appId, openid: other.openid }).code,
          }),
        ),
      ).toMatchObject({ code: Code.FailedPrecondition, reason: "WECHAT_APP_REJECTED" });
    } finally {
      await fresh.stop();
    }
  });

  it("recovers when another service knocks the app's access_token out: one forced refresh, then the call", async () => {
    const user = await login(t);
    await t.connect.getPhoneNumber({
      accessToken: user.accessToken,
      phoneCode: t.sandbox.issuePhoneCode({ appId: APP.appId, openid: user.openid }).code,
    });
    await forceRefreshElsewhere(t);
    const forcedBefore = t.sandbox.stats.forcedRefreshes;
    const { code } = t.sandbox.issuePhoneCode({ appId: APP.appId, openid: user.openid });
    expect(
      (await t.connect.getPhoneNumber({ accessToken: user.accessToken, phoneCode: code })).countryCode,
    ).toBe("86");
    expect(t.sandbox.stats.forcedRefreshes).toBe(forcedBefore + 1);
  });
});

describe.each(BACKENDS)("CheckSessionKey (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend);
  });
  afterAll(() => t.stop());

  it("answers OK while WeChat holds the same session_key, SESSION_KEY_EXPIRED once it changed", async () => {
    const user = await login(t);
    await t.connect.checkSessionKey({ accessToken: user.accessToken });
    expect(t.sandbox.stats.checkSessionCalls).toBe(1);

    // A wx.login() on the device whose code never reached us: WeChat's key moved on, ours is stale.
    const { code } = t.sandbox.issueCode({ appId: APP.appId, openid: user.openid, rotateSessionKey: true });
    expect(await connectFailure(t.connect.checkSessionKey({ accessToken: user.accessToken }))).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "SESSION_KEY_EXPIRED",
    });
    expect(await grpcFailure(t.grpc.call("checkSessionKey", { accessToken: user.accessToken }))).toEqual({
      code: grpc.status.FAILED_PRECONDITION,
      reason: "SESSION_KEY_EXPIRED",
    });

    // Logging in with that code brings the service's key up to date.
    const again = await t.connect.login({ appId: APP.appId, code });
    await t.connect.checkSessionKey({ accessToken: again.tokens?.accessToken as string });
  });
});

describe.skipIf(!REAL_DATABASE_URL || !REAL_REDIS_URL)(
  "GetPhoneNumber across instances (real backends)",
  () => {
    let a: TestApp;
    let b: TestApp;
    beforeAll(async () => {
      a = await startTestApp("real");
      b = await startTestApp("real", { WECHAT_API_BASE_URL: a.sandboxUrl }, { shareStorageWith: a });
    });
    afterAll(async () => {
      await b?.stop();
      await a?.stop();
    });

    it("shares one app access_token between instances, and one forced refresh after a knock-out", async () => {
      const users = await Promise.all([login(a), login(b, a), login(a), login(b, a)]);
      const ask = () =>
        Promise.all(
          users.map((u, i) =>
            (i % 2 === 0 ? a : b).connect.getPhoneNumber({
              accessToken: u.accessToken,
              phoneCode: a.sandbox.issuePhoneCode({ appId: APP.appId, openid: u.openid }).code,
            }),
          ),
        );
      await ask();
      expect(a.sandbox.stats.stableTokenCalls).toBe(1);

      await forceRefreshElsewhere(a);
      const forcedBefore = a.sandbox.stats.forcedRefreshes;
      await ask();
      expect(a.sandbox.stats.forcedRefreshes).toBe(forcedBefore + 1);
    });
  },
);
