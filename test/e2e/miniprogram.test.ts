import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBff } from "../../examples/bff/server.js";
import { protect } from "../../examples/protect-http-handler.js";
import { createIdentityClient, createVerifier, type Verifier } from "../../src/client/index.js";
import { type Auth, AuthError, createAuth } from "../../src/miniprogram/auth.js";
import { movableClock } from "../helpers/clock.js";
import { eventually } from "../helpers/eventually.js";
import { rejection } from "../helpers/failures.js";
import { type SimulatedDevice, simulatedDevice } from "../helpers/simulated-wx.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
const ACCESS_TOKEN_TTL_MS = 5 * 60_000;
/** Past the access token's lifetime and the verifier's leeway (5 s), well inside the refresh token's. */
const PAST_ACCESS_TOKEN_EXPIRY_MS = ACCESS_TOKEN_TTL_MS + 10_000;

/**
 * A simulated mini-program (src/miniprogram/auth.ts on a simulated `wx`) against the whole
 * stack: the reference BFF over Connect, the identity service, and an internal orders service
 * guarded by the verifier over gRPC, on real Postgres and Redis when configured (embedded
 * otherwise, with the data on disk so the service can be stopped and started again).
 */
describe.each(BACKENDS)("mini-program end to end (%s backends)", (backend) => {
  const clock = movableClock();
  let t: TestApp;
  let verifier: Verifier;
  let gateway: Server;
  let baseUrl: string;
  let openidCount = 0;

  beforeAll(async () => {
    t = await startTestApp(
      backend,
      { ACCESS_TOKEN_TTL: `${ACCESS_TOKEN_TTL_MS / 1000}s` },
      { clock, persistentData: true },
    );
    verifier = createVerifier({ address: `127.0.0.1:${t.app.grpcPort}`, deadlineMs: 1000 });
    const bff = createBff(createIdentityClient({ baseUrl: t.httpUrl, timeoutMs: 2000 }), {
      appId: APP.appId,
    });
    // The internal service the mini-program's data comes from: it trusts only verified tokens.
    const orders = protect(verifier, (_req, res, user) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ userId: user.userId, openid: user.openid, orders: [] }));
    });
    const route: RequestListener = (req, res) =>
      req.url?.startsWith("/api/orders") ? orders(req, res) : bff(req, res);
    gateway = createServer(route);
    await new Promise<void>((resolve) => gateway.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    gateway?.close();
    verifier?.close();
    await t?.stop();
  });

  /** A phone of a user of its own. */
  const newDevice = (): SimulatedDevice =>
    simulatedDevice({
      sandboxUrl: t.sandboxUrl,
      appId: APP.appId,
      openid: `o-e2e-${backend}-${++openidCount}`,
    });
  const launch = (device: SimulatedDevice): Auth =>
    createAuth({ wx: device.wx, baseUrl, loginRetryDelaysMs: [50, 100] });
  const orders = (auth: Auth) => auth.request<{ userId: string; openid: string }>({ url: "/api/orders" });
  /** The first successful call once the service is back (the verifier reconnects on its own schedule). */
  async function whenBack(auth: Auth) {
    let answer: Awaited<ReturnType<typeof orders>> | undefined;
    await eventually(
      async () => {
        try {
          answer = await orders(auth);
          return true;
        } catch (err) {
          if (err instanceof AuthError && err.kind === "unavailable") return false;
          throw err;
        }
      },
      "calls to succeed again",
      15_000,
    );
    return answer as NonNullable<typeof answer>;
  }

  it("lists the user's devices through the BFF and signs one of them out", async () => {
    const openid = `o-e2e-${backend}-${++openidCount}`;
    const phone = createAuth({
      wx: simulatedDevice({ sandboxUrl: t.sandboxUrl, appId: APP.appId, openid }).wx,
      baseUrl,
    });
    const tablet = createAuth({
      wx: simulatedDevice({ sandboxUrl: t.sandboxUrl, appId: APP.appId, openid }).wx,
      baseUrl,
    });
    await phone.silentLogin();
    const tabletSession = await tablet.silentLogin();

    const listed = await phone.sessions();
    expect(listed.map((s) => s.current)).toEqual([false, true]);
    const other = listed.find((s) => !s.current) as (typeof listed)[0];
    expect(Math.abs(other.createdAt - Date.now())).toBeLessThan(60_000);
    expect(await phone.endSession({ sessionId: other.sessionId })).toBe(1);

    // The tablet's token is refused by the internal service from now on.
    const refused = await fetch(`${baseUrl}/api/orders`, {
      headers: { authorization: `Bearer ${tabletSession.accessToken}` },
    });
    expect(refused.status).toBe(401);
    expect((await phone.sessions()).map((s) => s.current)).toEqual([true]);
    expect(await phone.endSession({ allOthers: true })).toBe(0);
  });

  it("logs in with the phone button through the BFF; a number that is another user's is refused with ACCOUNT_CONFLICT", async () => {
    const openid = `o-e2e-${backend}-${++openidCount}`;
    const number = `+86 1360000${String(openidCount).padStart(4, "0")}${backend === "real" ? 1 : 2}`;
    const device = simulatedDevice({ sandboxUrl: t.sandboxUrl, appId: APP.appId, openid });
    const auth = launch(device);
    // e.detail.code of the getPhoneNumber button.
    const { code } = t.sandbox.issuePhoneCode({ appId: APP.appId, openid, phoneNumber: number });
    const session = await auth.phoneLogin(code);
    expect(session.newUser).toBe(true);
    expect((await orders(auth)).data.userId).toBe(session.user?.id);
    // A silent login of the same phone later is the same user.
    expect(
      (await launch(simulatedDevice({ sandboxUrl: t.sandboxUrl, appId: APP.appId, openid })).silentLogin())
        .user?.id,
    ).toBe(session.user?.id);

    const otherOpenid = `o-e2e-${backend}-${++openidCount}`;
    const other = launch(
      simulatedDevice({ sandboxUrl: t.sandboxUrl, appId: APP.appId, openid: otherOpenid }),
    );
    await other.silentLogin();
    const taken = t.sandbox.issuePhoneCode({ appId: APP.appId, openid: otherOpenid, phoneNumber: number });
    const refused = await rejection(other.phoneLogin(taken.code), AuthError);
    expect(refused).toMatchObject({ kind: "refused", reason: "ACCOUNT_CONFLICT", status: 400 });
  });

  it("launch, silent login, protected call, one refresh for ten requests in flight, logout, silent login on relaunch", async () => {
    const device = newDevice();
    const auth = launch(device);

    const session = await auth.silentLogin();
    expect(device.calls).toMatchObject({ login: 1, checkSession: 0 });
    expect(device.storage.get("wechat-identity.session")).toEqual(session);

    const first = await orders(auth);
    expect(first.statusCode).toBe(200);
    expect(first.data.userId).toBe(session.user?.id);

    clock.advance(PAST_ACCESS_TOKEN_EXPIRY_MS);
    const ten = await Promise.all(Array.from({ length: 10 }, () => orders(auth)));
    expect(ten.map((r) => [r.statusCode, r.data.userId])).toEqual(
      Array.from({ length: 10 }, () => [200, session.user?.id]),
    );
    expect(device.requestsTo("/api/auth/refresh")).toBe(1);
    expect(device.calls.login).toBe(1);
    const refreshed = auth.session();
    expect(refreshed?.refreshToken).not.toBe(session.refreshToken);
    expect(device.storage.get("wechat-identity.session")).toEqual(refreshed);

    await auth.logout();
    expect(device.storage.has("wechat-identity.session")).toBe(false);
    const refused = await fetch(`${baseUrl}/api/orders`, {
      headers: { authorization: `Bearer ${refreshed?.accessToken}` },
    });
    expect([refused.status, ((await refused.json()) as { error: { reason: string } }).error.reason]).toEqual([
      401,
      "TOKEN_REVOKED",
    ]);
    expect(await rejection(orders(auth), AuthError)).toMatchObject({
      kind: "unauthenticated",
      reason: "LOGGED_OUT",
    });

    const relaunched = launch(device);
    const again = await relaunched.silentLogin();
    expect(device.calls.login).toBe(2);
    expect(again.user?.id).toBe(session.user?.id);
    expect((await orders(relaunched)).data.userId).toBe(session.user?.id);
  });

  it("identity service stopped: unavailable, tokens kept; started again: calls succeed without a new login", async () => {
    const device = newDevice();
    const auth = launch(device);
    const session = await auth.silentLogin();

    await t.pause();
    try {
      expect(await rejection(orders(auth), AuthError)).toMatchObject({ kind: "unavailable", status: 503 });
      expect(await rejection(auth.request({ url: "/api/me" }), AuthError)).toMatchObject({
        kind: "unavailable",
        status: 503,
      });
      expect(auth.session()).toEqual(session);
    } finally {
      await t.resume();
    }
    expect((await whenBack(auth)).data.userId).toBe(session.user?.id);
    expect(device.calls.login).toBe(1);
    expect(device.requestsTo("/api/auth/refresh")).toBe(0);

    // The access token expires and the refresh itself meets the outage: still no tokens lost.
    clock.advance(PAST_ACCESS_TOKEN_EXPIRY_MS);
    device.beforeNextRequest("/api/auth/refresh", () => t.pause());
    try {
      expect(await rejection(orders(auth), AuthError)).toMatchObject({ kind: "unavailable", status: 503 });
      expect(device.storage.get("wechat-identity.session")).toEqual(session);
    } finally {
      await t.resume();
    }
    expect((await whenBack(auth)).data.userId).toBe(session.user?.id);
    expect([device.calls.login, device.requestsTo("/api/auth/refresh")]).toEqual([1, 2]);
  });

  it("relaunch with a session held checks WeChat's session instead of calling wx.login; a lapsed one logs in again", async () => {
    const device = newDevice();
    const session = await launch(device).silentLogin();

    const relaunched = launch(device);
    expect(await relaunched.silentLogin()).toEqual(session);
    expect(device.calls).toMatchObject({ login: 1, checkSession: 1 });

    device.wechatSessionExpired = true;
    const renewed = await launch(device).silentLogin();
    expect(device.calls).toMatchObject({ login: 2, checkSession: 2 });
    expect(renewed.accessToken).not.toBe(session.accessToken);
    expect(renewed.user?.id).toBe(session.user?.id);
  });

  it("sends a login whose answer was lost again with the same code: WeChat is asked once", async () => {
    const device = newDevice();
    const auth = launch(device);
    const asked = t.sandbox.stats.code2SessionCalls;
    device.loseNextAnswer("/api/auth/login");

    const session = await auth.silentLogin();
    expect(device.requestsTo("/api/auth/login")).toBe(2);
    expect(device.calls.login).toBe(1);
    expect(t.sandbox.stats.code2SessionCalls - asked).toBe(1);
    expect((await orders(auth)).data.openid).toBe(session.user?.openid);
  });

  it("WeChat's troubles at login: a refused code is replaced once, a failing WeChat is retried with the same code, a high-risk user is refused", async () => {
    const refusedCode = newDevice();
    t.sandbox.failNext(40029);
    await launch(refusedCode).silentLogin();
    expect([refusedCode.calls.login, refusedCode.requestsTo("/api/auth/login")]).toEqual([2, 2]);

    const busy = newDevice();
    t.sandbox.failNext("http500", 2);
    await launch(busy).silentLogin();
    expect([busy.calls.login, busy.requestsTo("/api/auth/login")]).toEqual([1, 3]);

    const down = newDevice();
    t.sandbox.failNext("http500", 3);
    expect(await rejection(launch(down).silentLogin(), AuthError)).toMatchObject({
      kind: "unavailable",
      reason: "WECHAT_UNAVAILABLE",
      status: 503,
    });

    const risky = newDevice();
    t.sandbox.failNext(40226);
    expect(await rejection(launch(risky).silentLogin(), AuthError)).toMatchObject({
      kind: "refused",
      reason: "HIGH_RISK_USER",
      status: 403,
    });
    expect([risky.calls.login, risky.requestsTo("/api/auth/login"), risky.storage.size]).toEqual([1, 1, 0]);
  });

  it("a refresh token spent elsewhere ends the session: the SDK logs in again silently and the call succeeds", async () => {
    const device = newDevice();
    const auth = launch(device);
    const session = await auth.silentLogin();
    // Someone else (a copy of the token) refreshes first; past the reuse grace, the SDK's own
    // refresh is a reuse, which ends the session on the service.
    await t.connect.refresh({ refreshToken: session.refreshToken });
    clock.advance(PAST_ACCESS_TOKEN_EXPIRY_MS);

    const answer = await orders(auth);
    expect([answer.statusCode, answer.data.userId]).toEqual([200, session.user?.id]);
    expect([device.requestsTo("/api/auth/refresh"), device.calls.login]).toEqual([1, 2]);
    expect(auth.session()?.refreshToken).not.toBe(session.refreshToken);
  });

  it("a revoked session (logged out on another device) is replaced by a silent login", async () => {
    const device = newDevice();
    const auth = launch(device);
    const session = await auth.silentLogin();
    await t.connect.logout({ refreshToken: session.refreshToken, allSessions: true });

    expect((await orders(auth)).data.userId).toBe(session.user?.id);
    expect([device.requestsTo("/api/auth/refresh"), device.calls.login]).toEqual([0, 2]);
  });

  it("reads garbage in storage as no session, and passes the app's own errors through", async () => {
    const device = newDevice();
    device.storage.set("wechat-identity.session", { accessToken: 42 });
    const auth = launch(device);
    expect(auth.session()).toBeNull();
    await auth.silentLogin();
    expect(device.calls).toMatchObject({ login: 1, checkSession: 0 });

    const missing = await auth.request({ url: "/api/nothing" });
    expect(missing.statusCode).toBe(404);
    const bad = await auth.request({ url: "/api/auth/decrypt", method: "POST", data: { iv: "x" } });
    expect(bad.statusCode).toBe(400);
    expect(auth.session()).not.toBeNull();
  });
});
