import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

/** Anyone who reaches Login must not be able to burn the app's WeChat quota, nor one user's data calls. */
describe.each(BACKENDS)("rate limits (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    // The defaults for logins (20 failures a minute); small ones for the per-user calls.
    t = await startTestApp(backend, {
      RATE_LIMIT_LOGIN_FAILURES: "20",
      RATE_LIMIT_REFRESH_FAILURES: "5",
      RATE_LIMIT_USER_DATA: "3",
      RATE_LIMIT_PHONE_NUMBER: "2",
    });
  });
  afterAll(() => t.stop());

  it("lets one end user's address fail 20 Logins a minute, then refuses it before WeChat is asked", async () => {
    const client = { ip: "198.51.100.7", userAgent: "attacker" };
    const before = t.sandbox.stats.code2SessionCalls;
    const reasons: string[] = [];
    for (let i = 0; i < 100; i++) {
      const failure = await connectFailure(t.connect.login({ appId: APP.appId, code: `junk-${i}`, client }));
      reasons.push(failure.reason ?? "");
    }
    expect(t.sandbox.stats.code2SessionCalls - before).toBe(20);
    expect(reasons.filter((r) => r === "INVALID_CODE")).toHaveLength(20);
    expect(reasons.filter((r) => r === "RATE_LIMITED")).toHaveLength(80);

    // A genuine code from that address waits too, with RetryInfo saying how long.
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    const refused = await t.connect
      .login({ appId: APP.appId, code, client })
      .catch((e) => ConnectError.from(e));
    expect((refused as ConnectError).code).toBe(Code.ResourceExhausted);
    const delay = (refused as ConnectError).findDetails(RetryInfoSchema)[0]?.retryDelay;
    expect(Number(delay?.seconds)).toBeGreaterThan(0);
    expect(Number(delay?.seconds)).toBeLessThanOrEqual(60);

    // Everyone else behind the same BFF logs in, the same code included (it was not spent).
    const other = await t.connect.login({ appId: APP.appId, code, client: { ip: "198.51.100.8" } });
    expect(other.tokens?.accessToken).toBeTruthy();
  });

  it("counts by the caller's own address when a Login carries no ClientInfo, over gRPC too", async () => {
    for (let i = 0; i < 20; i++) {
      await grpcFailure(t.grpc.call("login", { appId: APP.appId, code: `grpc-junk-${i}` }));
    }
    expect(await grpcFailure(t.grpc.call("login", { appId: APP.appId, code: "grpc-junk-x" }))).toEqual({
      code: grpc.status.RESOURCE_EXHAUSTED,
      reason: "RATE_LIMITED",
    });
    // A device the BFF names is its own client.
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    const named = await t.grpc.call("login", { appId: APP.appId, code, client: { deviceId: "device-42" } });
    expect(named.tokens?.accessToken).toBeTruthy();
  });

  it("limits Refreshes with unknown or spent tokens per end user; an ended session's refresh is not counted", async () => {
    const client = { ip: "198.51.100.20" };
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    const first = (await t.connect.login({ appId: APP.appId, code, client })).tokens;
    const guessed = "A".repeat(first?.refreshToken.length ?? 43);
    // Logged out: refreshing it fails as TOKEN_REVOKED however often, and counts for nothing.
    await t.connect.logout({ refreshToken: first?.refreshToken ?? "" });
    for (let i = 0; i < 6; i++) {
      expect(
        await connectFailure(t.connect.refresh({ refreshToken: first?.refreshToken ?? "", client })),
      ).toMatchObject({
        reason: "TOKEN_REVOKED",
      });
    }
    for (let i = 0; i < 5; i++) {
      expect(await connectFailure(t.connect.refresh({ refreshToken: guessed, client }))).toMatchObject({
        reason: "TOKEN_INVALID",
      });
    }
    const limited = await connectFailure(t.connect.refresh({ refreshToken: guessed, client }));
    expect(limited).toMatchObject({ code: Code.ResourceExhausted, reason: "RATE_LIMITED" });

    // The same end user's genuine token waits too; another user behind the same BFF does not.
    const { code: code2 } = t.sandbox.issueCode({ appId: APP.appId });
    const second = (await t.connect.login({ appId: APP.appId, code: code2, client })).tokens;
    expect(
      await connectFailure(t.connect.refresh({ refreshToken: second?.refreshToken ?? "", client })),
    ).toMatchObject({
      reason: "RATE_LIMITED",
    });
    const other = await t.connect.refresh({
      refreshToken: second?.refreshToken ?? "",
      client: { ip: "198.51.100.21" },
    });
    expect(other.tokens?.accessToken).toBeTruthy();
  });

  it("limits DecryptUserData and GetPhoneNumber per user", async () => {
    const login = async (openid: string) => {
      const { code } = t.sandbox.issueCode({ appId: APP.appId, openid });
      return (await t.connect.login({ appId: APP.appId, code, client: { ip: `203.0.113.${openid.length}` } }))
        .tokens?.accessToken as string;
    };
    const [alice, bob] = [await login("alice-rl"), await login("bob-rl-x")];
    const decrypt = (accessToken: string, openid: string) =>
      t.connect.decryptUserData({
        accessToken,
        ...t.sandbox.encryptUserData(APP.appId, openid, { openId: openid }),
      });
    for (let i = 0; i < 3; i++) await decrypt(alice, "alice-rl");
    expect(await connectFailure(decrypt(alice, "alice-rl"))).toMatchObject({
      code: Code.ResourceExhausted,
      reason: "RATE_LIMITED",
    });
    expect((await decrypt(bob, "bob-rl-x")).watermark?.appId).toBe(APP.appId);

    const phone = (accessToken: string, openid: string) =>
      t.connect.getPhoneNumber({
        accessToken,
        phoneCode: t.sandbox.issuePhoneCode({ appId: APP.appId, openid }).code,
      });
    await phone(alice, "alice-rl");
    await phone(alice, "alice-rl");
    const calls = t.sandbox.stats.phoneNumberCalls;
    expect(await connectFailure(phone(alice, "alice-rl"))).toMatchObject({ reason: "RATE_LIMITED" });
    expect(t.sandbox.stats.phoneNumberCalls).toBe(calls);
    expect((await phone(bob, "bob-rl-x")).phoneNumber).toBeTruthy();
  });
});
