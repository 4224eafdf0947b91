import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBff } from "../../examples/bff/server.js";
import { createIdentityClient } from "../../src/client/index.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

/** The reference BFF (examples/bff) over real HTTP, in front of the whole service. */
describe.each(BACKENDS)("reference BFF (%s backends)", (backend) => {
  let t: TestApp;
  let bff: Server;
  let url: string;
  beforeAll(async () => {
    t = await startTestApp(backend);
    bff = createServer(
      createBff(createIdentityClient({ baseUrl: t.httpUrl, timeoutMs: 2000 }), { appId: APP.appId }),
    );
    await new Promise<void>((resolve) => bff.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(bff.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    bff.close();
    await t.stop();
  });

  const post = (path: string, body: unknown, accessToken?: string) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "miniprogram/1.0",
        "x-forwarded-for": "198.51.100.9, 10.0.0.1",
        ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}),
      },
      body: JSON.stringify(body),
    });
  const me = (accessToken: string) =>
    fetch(`${url}/api/me`, { headers: { authorization: `Bearer ${accessToken}` } });

  it("logs in, answers /api/me, refreshes, decrypts, gets the phone number and logs out", async () => {
    const { code, openid } = t.sandbox.issueCode({ appId: APP.appId });
    const login = await post("/api/auth/login", { code });
    expect(login.status).toBe(200);
    const tokens = (await login.json()) as {
      accessToken: string;
      refreshToken: string;
      user: { openid: string };
    };
    expect(tokens.user.openid).toBe(openid);
    if (backend === "real") {
      // The mini-program's address (first X-Forwarded-For hop) and user agent reach the session.
      const db = postgres(t.config.databaseUrl as string, { max: 1 });
      const [session] = await db`select client_ip, user_agent from sessions where openid = ${openid}`;
      await db.end();
      expect(session).toEqual({ client_ip: "198.51.100.9", user_agent: "miniprogram/1.0" });
    }
    expect(await (await me(tokens.accessToken)).json()).toMatchObject({ openid });

    const refreshed = (await (
      await post("/api/auth/refresh", { refreshToken: tokens.refreshToken })
    ).json()) as {
      accessToken: string;
      refreshToken: string;
    };
    expect(refreshed.refreshToken).not.toBe(tokens.refreshToken);

    const sealed = t.sandbox.encryptUserData(APP.appId, openid, { openId: openid, nickName: "n" });
    const decrypted = await post("/api/auth/decrypt", sealed, refreshed.accessToken);
    expect(await decrypted.json()).toMatchObject({ data: { nickName: "n" } });

    const phoneCode = t.sandbox.issuePhoneCode({ appId: APP.appId, openid }).code;
    expect(
      await (await post("/api/auth/phone", { code: phoneCode }, refreshed.accessToken)).json(),
    ).toMatchObject({
      purePhoneNumber: "13800138000",
    });

    expect(
      (await post("/api/auth/logout", { refreshToken: refreshed.refreshToken }, refreshed.accessToken))
        .status,
    ).toBe(204);
    const after = await me(refreshed.accessToken);
    expect([after.status, await after.json()]).toEqual([
      401,
      { error: { code: "Unauthenticated", reason: "TOKEN_REVOKED", message: expect.any(String) } },
    ]);
  });

  it("turns the service's errors into HTTP statuses with the reason", async () => {
    const reused = await post("/api/auth/login", { code: "not-a-code" });
    expect([reused.status, ((await reused.json()) as { error: { reason: string } }).error.reason]).toEqual([
      401,
      "INVALID_CODE",
    ]);
    const missing = await post("/api/auth/login", {});
    expect(missing.status).toBe(400);
    const notJson = await fetch(`${url}/api/auth/login`, { method: "POST", body: "{" });
    expect(notJson.status).toBe(400);
    expect((await fetch(`${url}/api/nothing`)).status).toBe(404);
  });

  it("answers 503, never 401, when the identity service cannot be reached", async () => {
    const down = createServer(
      createBff(createIdentityClient({ baseUrl: "http://127.0.0.1:1", timeoutMs: 500 })),
    );
    await new Promise<void>((resolve) => down.listen(0, "127.0.0.1", resolve));
    try {
      const response = await fetch(`http://127.0.0.1:${(down.address() as AddressInfo).port}/api/me`, {
        headers: { authorization: "Bearer x.y.z" },
      });
      expect([
        response.status,
        ((await response.json()) as { error: { reason: string } }).error.reason,
      ]).toEqual([503, "UNAVAILABLE"]);
    } finally {
      down.close();
    }
  });
});
