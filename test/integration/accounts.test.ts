import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_PASSWORD as PASSWORD, startWithAdmin } from "../helpers/admin.js";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { uniqueName } from "../helpers/scratch-database.js";
import { BACKENDS, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

/** Waits until the clock's second changes: a token issued before it is then older than a change after it. */
const nextSecond = () => sleep(1001 - (Date.now() % 1000));

describe.each(BACKENDS)("staff accounts, roles, bans and the audit log (%s backends)", (backend) => {
  let t: TestApp;
  let done: () => Promise<void>;
  let adminToken: string;
  beforeAll(async () => {
    ({ t, done } = await startWithAdmin(backend));
    const login = await t.connect.loginWithPassword({
      username: "ALICE",
      password: PASSWORD,
      client: { ip: "198.51.100.7", userAgent: "console" },
    });
    adminToken = login.tokens?.accessToken as string;
  });
  afterAll(() => done());

  const wechatLogin = async (openid: string) => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId, openid });
    return t.connect.login({ appId: APP.appId, code, client: { ip: "203.0.113.5", deviceId: "phone-1" } });
  };

  it("logs the admin made by admin:create in with a password; its token carries roles and permissions", async () => {
    const verified = await t.grpc.call("verifyToken", { accessToken: adminToken });
    expect(verified.claims).toMatchObject({
      appId: "staff",
      openid: "",
      roles: ["admin"],
      permissions: ["identity:admin"],
    });
    const search = await t.adminGrpc.call("searchUsers", { accessToken: adminToken, username: "alice" });
    expect(search.users).toHaveLength(1);
    expect(search.users[0]?.roles).toEqual(["admin"]);
  });

  it("answers a wrong password and an unknown username alike, over both transports", async () => {
    const wrong = await connectFailure(t.connect.loginWithPassword({ username: "alice", password: "nope" }));
    const unknown = await connectFailure(
      t.connect.loginWithPassword({ username: uniqueName("nobody"), password: PASSWORD }),
    );
    expect(wrong).toMatchObject({ code: Code.Unauthenticated, reason: "INVALID_CREDENTIALS" });
    expect(unknown).toEqual(wrong);
    expect(await grpcFailure(t.grpc.call("loginWithPassword", { username: "alice", password: "x" }))).toEqual(
      {
        code: status.UNAUTHENTICATED,
        reason: "INVALID_CREDENTIALS",
      },
    );
  });

  it("refuses AdminService to a token without identity:admin, and without a token", async () => {
    const user = await wechatLogin(uniqueName("o"));
    const userToken = user.tokens?.accessToken as string;
    expect(await connectFailure(t.admin.listRoles({ accessToken: userToken }))).toMatchObject({
      code: Code.PermissionDenied,
      reason: "PERMISSION_MISSING",
    });
    expect(await grpcFailure(t.adminGrpc.call("listRoles", { accessToken: userToken }))).toEqual({
      code: status.PERMISSION_DENIED,
      reason: "PERMISSION_MISSING",
    });
    expect(await connectFailure(t.admin.listRoles({ accessToken: "" }))).toMatchObject({
      code: Code.InvalidArgument,
      field: "access_token",
    });
  });

  it("finds a WeChat user by openid and shows their identity and live sessions", async () => {
    const openid = uniqueName("o");
    const user = (await wechatLogin(openid)).user;
    const found = await t.admin.searchUsers({ accessToken: adminToken, openid });
    expect(found.users.map((u) => u.id)).toEqual([user?.id]);
    const details = await t.adminGrpc.call("getUser", {
      accessToken: adminToken,
      userId: user?.id as string,
    });
    expect(details.wechatIdentities).toEqual([expect.objectContaining({ appId: APP.appId, openid })]);
    expect(details.sessions).toEqual([
      expect.objectContaining({ clientIp: "203.0.113.5", deviceId: "phone-1" }),
    ]);
    expect(
      await connectFailure(
        t.admin.getUser({ accessToken: adminToken, userId: "00000000-0000-4000-8000-000000000000" }),
      ),
    ).toMatchObject({ code: Code.NotFound, reason: "USER_NOT_FOUND" });
  });

  it("puts a role change into VerifyToken answers on both ports at once: older tokens read as expired, a refresh brings the new roles", async () => {
    await t.admin.setRolePermissions({
      accessToken: adminToken,
      role: "ops",
      permissions: ["order:read:all"],
    });
    const login = await wechatLogin(uniqueName("o"));
    const accessToken = login.tokens?.accessToken as string;
    expect((await t.grpc.call("verifyToken", { accessToken })).claims?.roles).toEqual([]);
    await nextSecond();
    const set = await t.admin.setRoles({
      accessToken: adminToken,
      userId: login.user?.id as string,
      roles: ["ops"],
    });
    expect(set.user).toMatchObject({ roles: ["ops"], permissions: ["order:read:all"] });

    expect(await grpcFailure(t.grpc.call("verifyToken", { accessToken }))).toEqual({
      code: status.UNAUTHENTICATED,
      reason: "TOKEN_EXPIRED",
    });
    expect(await connectFailure(t.connect.verifyToken({ accessToken }))).toMatchObject({
      reason: "TOKEN_EXPIRED",
    });
    const refreshed = await t.connect.refresh({ refreshToken: login.tokens?.refreshToken as string });
    const claims = (
      await t.grpc.call("verifyToken", { accessToken: refreshed.tokens?.accessToken as string })
    ).claims;
    expect(claims).toMatchObject({ roles: ["ops"], permissions: ["order:read:all"] });

    // What a role grants changes too: the holder's tokens are out of date again.
    await nextSecond();
    await t.admin.setRolePermissions({ accessToken: adminToken, role: "ops", permissions: ["order:*"] });
    expect(
      await grpcFailure(t.grpc.call("verifyToken", { accessToken: refreshed.tokens?.accessToken as string })),
    ).toMatchObject({ reason: "TOKEN_EXPIRED" });
    const again = await t.connect.refresh({ refreshToken: refreshed.tokens?.refreshToken as string });
    expect(
      (await t.connect.verifyToken({ accessToken: again.tokens?.accessToken as string })).claims?.permissions,
    ).toEqual(["order:*"]);
    const roles = await t.admin.listRoles({ accessToken: adminToken });
    expect(roles.roles).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "admin", permissions: ["identity:admin"] }),
        expect.objectContaining({ name: "ops", permissions: ["order:*"] }),
      ]),
    );
  });

  it("disables a user: their sessions end everywhere at once, logins and refreshes are refused, and who and why are recorded; enabling lets them in again", async () => {
    const openid = uniqueName("o");
    const first = await wechatLogin(openid);
    const second = await wechatLogin(openid);
    const userId = first.user?.id as string;
    const disabled = await t.adminGrpc.call("disableUser", {
      accessToken: adminToken,
      userId,
      reason: "spam",
    });
    expect(disabled.sessionsEnded).toBe(2);
    for (const pair of [first.tokens, second.tokens]) {
      expect(
        await grpcFailure(t.grpc.call("verifyToken", { accessToken: pair?.accessToken as string })),
      ).toMatchObject({
        reason: "TOKEN_REVOKED",
      });
      expect(
        await connectFailure(t.connect.refresh({ refreshToken: pair?.refreshToken as string })),
      ).toMatchObject({
        code: Code.Unauthenticated,
      });
    }
    expect(await connectFailure(wechatLogin(openid))).toMatchObject({
      code: Code.PermissionDenied,
      reason: "USER_DISABLED",
    });
    const shown = await t.admin.getUser({ accessToken: adminToken, userId });
    const adminId = (await t.connect.verifyToken({ accessToken: adminToken })).claims?.userId;
    expect(shown.user).toMatchObject({ disabledBy: adminId, disabledReason: "spam" });
    expect(shown.sessions).toEqual([]);

    await t.admin.enableUser({ accessToken: adminToken, userId });
    expect((await wechatLogin(openid)).user?.id).toBe(userId);

    const audit = await t.admin.listAuditEvents({ accessToken: adminToken, userId });
    const types = audit.events.map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["user.disabled", "user.enabled", "login.succeeded"]));
    const ban = audit.events.find((e) => e.type === "user.disabled");
    expect(ban).toMatchObject({ actor: adminId, userId });
    expect(ban?.details).toMatchObject({ reason: "spam", method: "DisableUser" });
  });

  it("creates staff accounts once per name and writes failed logins and admin calls to the audit log, page by page", async () => {
    const created = await t.admin.createStaffAccount({
      accessToken: adminToken,
      username: "Bob.Ops",
      password: PASSWORD,
      roles: ["ops"],
    });
    expect(created.user?.roles).toEqual(["ops"]);
    expect(
      await connectFailure(
        t.admin.createStaffAccount({ accessToken: adminToken, username: "bob.ops", password: PASSWORD }),
      ),
    ).toMatchObject({ code: Code.AlreadyExists, reason: "USERNAME_TAKEN" });
    expect(
      await connectFailure(
        t.admin.createStaffAccount({ accessToken: adminToken, username: "carol", password: "short" }),
      ),
    ).toMatchObject({ code: Code.InvalidArgument, field: "password" });
    const bob = await t.connect.loginWithPassword({ username: "bob.ops", password: PASSWORD });
    expect(bob.user?.permissions).toEqual(["order:*"]);

    await connectFailure(t.connect.loginWithPassword({ username: "bob.ops", password: "wrong" }));
    const failed = await t.admin.listAuditEvents({ accessToken: adminToken, type: "login.failed" });
    expect(failed.events[0]?.details).toMatchObject({ username: "bob.ops", reason: "INVALID_CREDENTIALS" });
    // The password appears in no audit row.
    expect(JSON.stringify(failed.events.map((e) => e.details))).not.toContain("wrong");

    const first = await t.admin.listAuditEvents({ accessToken: adminToken, pageSize: 3 });
    const second = await t.admin.listAuditEvents({
      accessToken: adminToken,
      pageSize: 3,
      pageToken: first.nextPageToken,
    });
    expect(first.events).toHaveLength(3);
    expect(second.events.length).toBeGreaterThan(0);
    const firstIds = new Set(first.events.map((e) => e.id));
    expect(second.events.some((e) => firstIds.has(e.id))).toBe(false);
    expect(second.events[0]?.at?.seconds).toBeLessThanOrEqual(first.events[2]?.at?.seconds as bigint);
    expect(
      await connectFailure(t.admin.listAuditEvents({ accessToken: adminToken, pageToken: "garbage" })),
    ).toMatchObject({ code: Code.InvalidArgument, field: "page_token" });
  });

  it("limits failed password logins per account", async () => {
    const username = uniqueName("limited");
    await t.admin.createStaffAccount({ accessToken: adminToken, username, password: PASSWORD });
    const reasons: Array<string | undefined> = [];
    for (let i = 0; i < 11; i++) {
      const failure = await connectFailure(
        t.connect.loginWithPassword({ username, password: "wrong", client: { ip: `192.0.2.${i}` } }),
      );
      reasons.push(failure.reason);
    }
    expect(reasons.slice(0, 10).every((r) => r === "INVALID_CREDENTIALS")).toBe(true);
    expect(reasons[10]).toBe("RATE_LIMITED");
    // The right password does not get through either until the minute is over.
    expect(await connectFailure(t.connect.loginWithPassword({ username, password: PASSWORD }))).toMatchObject(
      {
        code: Code.ResourceExhausted,
        reason: "RATE_LIMITED",
      },
    );
  });
});
