import { Code } from "@connectrpc/connect";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminAccessToken, startWithAdmin } from "../helpers/admin.js";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { uniqueName } from "../helpers/scratch-database.js";
import { BACKENDS, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const [APP, OTHER_APP] = TEST_APPS as [(typeof TEST_APPS)[0], (typeof TEST_APPS)[0]];
const CLIENT = { ip: "203.0.113.9", userAgent: "wechat-devtools", deviceId: "" };

/** A phone number no other test uses. */
const newNumber = () => `+86 137${String(Math.floor(Math.random() * 1e8)).padStart(8, "0")}`;

describe.each(BACKENDS)("phone logins, linked identities and merges (%s backends)", (backend) => {
  let t: TestApp;
  let done: () => Promise<void>;
  let adminToken: string;
  beforeAll(async () => {
    ({ t, done } = await startWithAdmin(backend));
    adminToken = await adminAccessToken(t);
  });
  afterAll(() => done());

  /** What the mini-program sends for one person: a wx.login code and a getPhoneNumber code. */
  function phoneCodes(openid: string, phoneNumber: string, appId = APP.appId) {
    const { code } = t.sandbox.issueCode({ appId, openid });
    const { code: phoneCode } = t.sandbox.issuePhoneCode({ appId, openid, phoneNumber });
    return { appId, code, phoneCode };
  }

  const silentLogin = async (openid: string, appId = APP.appId) => {
    const { code } = t.sandbox.issueCode({ appId, openid });
    return t.connect.login({ appId, code, client: CLIENT });
  };

  it("logs in with a phone over Connect and gRPC: a new user with the number, then the same user", async () => {
    const openid = uniqueName("o");
    const number = newNumber();
    const first = await t.connect.loginWithPhone({ ...phoneCodes(openid, number), client: CLIENT });
    expect(first.newUser).toBe(true);
    expect(first.user).toMatchObject({ openid, phoneNumber: number });

    const again = await t.grpc.call("loginWithPhone", phoneCodes(openid, number));
    expect(again.newUser).toBe(false);
    expect(again.user?.id).toBe(first.user?.id);
    // The silent login of the same openid is the same user, number included.
    expect((await silentLogin(openid)).user).toMatchObject({
      id: first.user?.id,
      phoneNumber: number,
    });

    const logins = await t.admin.listAuditEvents({
      accessToken: adminToken,
      userId: first.user?.id as string,
      type: "login.succeeded",
    });
    expect(logins.events.map((e) => e.details?.method)).toEqual(["wechat", "phone", "phone"]);
  });

  it("links the number to a user known by openid, and the openid to a user known by the number", async () => {
    const openid = uniqueName("o");
    const silent = await silentLogin(openid);
    expect(silent.user?.phoneNumber).toBe("");
    const number = newNumber();
    const byOpenid = await t.connect.loginWithPhone(phoneCodes(openid, number));
    expect(byOpenid).toMatchObject({
      newUser: false,
      user: { id: silent.user?.id, phoneNumber: number },
    });

    // The same number from another mini-program's user: the same person.
    const otherOpenid = uniqueName("o");
    const byNumber = await t.connect.loginWithPhone(phoneCodes(otherOpenid, number, OTHER_APP.appId));
    expect(byNumber).toMatchObject({
      newUser: false,
      user: { id: silent.user?.id, appId: OTHER_APP.appId },
    });
  });

  it("answers ACCOUNT_CONFLICT when the number and the openid are two users; a merge is the way out", async () => {
    const number = newNumber();
    const holder = await t.connect.loginWithPhone(phoneCodes(uniqueName("o"), number));
    const otherOpenid = uniqueName("o");
    const other = await silentLogin(otherOpenid);

    expect(await connectFailure(t.connect.loginWithPhone(phoneCodes(otherOpenid, number)))).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "ACCOUNT_CONFLICT",
    });
    expect(await grpcFailure(t.grpc.call("loginWithPhone", phoneCodes(otherOpenid, number)))).toEqual({
      code: status.FAILED_PRECONDITION,
      reason: "ACCOUNT_CONFLICT",
    });
    const failed = await t.admin.listAuditEvents({
      accessToken: adminToken,
      type: "login.failed",
      pageSize: 20,
    });
    expect(failed.events.map((e) => e.details)).toContainEqual(
      expect.objectContaining({ method: "phone", reason: "ACCOUNT_CONFLICT" }),
    );

    const merged = await t.adminGrpc.call("mergeUsers", {
      accessToken: adminToken,
      survivorUserId: holder.user?.id as string,
      absorbedUserId: other.user?.id as string,
      reason: "one person, ticket 42",
    });
    expect(merged.sessionsEnded).toBe(1);
    expect(merged.user?.wechatIdentities).toHaveLength(2);
    // The absorbed user's session ends at once; its openid now reaches the survivor.
    expect(
      await grpcFailure(t.grpc.call("verifyToken", { accessToken: other.tokens?.accessToken as string })),
    ).toEqual({ code: status.UNAUTHENTICATED, reason: "TOKEN_REVOKED" });
    const after = await t.connect.loginWithPhone(phoneCodes(otherOpenid, number));
    expect(after.user?.id).toBe(holder.user?.id);
    const absorbed = await t.admin.getUser({ accessToken: adminToken, userId: other.user?.id as string });
    expect(absorbed.user).toMatchObject({ mergedInto: holder.user?.id, disabledBy: expect.any(String) });
    expect(absorbed.wechatIdentities).toHaveLength(0);
    const record = await t.admin.listAuditEvents({
      accessToken: adminToken,
      userId: holder.user?.id as string,
      type: "users.merged",
    });
    expect(record.events[0]?.details).toMatchObject({
      absorbed_user_id: other.user?.id,
      reason: "one person, ticket 42",
    });
  });

  it("makes one user of parallel phone logins of one person", async () => {
    const openid = uniqueName("o");
    const number = newNumber();
    const logins = await Promise.all(
      Array.from({ length: 6 }, () => t.connect.loginWithPhone(phoneCodes(openid, number))),
    );
    expect(new Set(logins.map((l) => l.user?.id)).size).toBe(1);
    expect(logins.filter((l) => l.newUser)).toHaveLength(1);
  });

  it("answers a retried phone login with the same session, asking WeChat for the number once", async () => {
    const codes = { ...phoneCodes(uniqueName("o"), newNumber()), attemptId: crypto.randomUUID() };
    const numbersAsked = t.sandbox.stats.phoneNumberCalls;
    const first = await t.connect.loginWithPhone(codes);
    const retry = await t.connect.loginWithPhone(codes);
    expect(retry.tokens?.refreshToken).toBe(first.tokens?.refreshToken);
    expect(t.sandbox.stats.phoneNumberCalls).toBe(numbersAsked + 1);
  });

  it("refuses a bad phone code without spending a session, and records the failure", async () => {
    const openid = uniqueName("o");
    const { code } = t.sandbox.issueCode({ appId: APP.appId, openid });
    expect(
      await connectFailure(
        t.connect.loginWithPhone({ appId: APP.appId, code, phoneCode: "not-a-phone-code" }),
      ),
    ).toMatchObject({ code: Code.InvalidArgument, reason: "INVALID_PHONE_CODE" });
    expect(
      await connectFailure(t.connect.loginWithPhone({ appId: APP.appId, code: "x", phoneCode: "" })),
    ).toMatchObject({
      code: Code.InvalidArgument,
      field: "phone_code",
    });
    const failed = await t.admin.listAuditEvents({
      accessToken: adminToken,
      type: "login.failed",
      pageSize: 50,
    });
    expect(failed.events.map((e) => e.details)).toContainEqual(
      expect.objectContaining({ method: "phone", reason: "INVALID_PHONE_CODE" }),
    );
  });

  it("records a failed silent login in the audit log with its reason and address", async () => {
    await connectFailure(t.connect.login({ appId: APP.appId, code: "never-issued", client: CLIENT }));
    const failed = await t.admin.listAuditEvents({
      accessToken: adminToken,
      type: "login.failed",
      pageSize: 50,
    });
    expect(failed.events).toContainEqual(
      expect.objectContaining({
        clientIp: CLIENT.ip,
        details: expect.objectContaining({ method: "wechat", reason: "INVALID_CODE", app_id: APP.appId }),
      }),
    );
  });

  it("links another app's WeChat identity, a phone number and a password to a logged-in user", async () => {
    const openid = uniqueName("o");
    const login = await silentLogin(openid);
    const accessToken = login.tokens?.accessToken as string;
    const userId = login.user?.id;

    const otherOpenid = uniqueName("o");
    const { code } = t.sandbox.issueCode({ appId: OTHER_APP.appId, openid: otherOpenid });
    expect(
      await t.connect.linkIdentity({
        accessToken,
        proof: { case: "wechat", value: { appId: OTHER_APP.appId, code } },
      }),
    ).toMatchObject({ linked: true });
    expect((await silentLogin(otherOpenid, OTHER_APP.appId)).user?.id).toBe(userId);

    const number = newNumber();
    const { code: phoneCode } = t.sandbox.issuePhoneCode({ appId: APP.appId, openid, phoneNumber: number });
    expect(
      await t.grpc.call("linkIdentity", { accessToken, proof: { case: "phoneCode", value: phoneCode } }),
    ).toMatchObject({ linked: true });

    const username = uniqueName("user").toLowerCase();
    const password = "a long enough password";
    await t.connect.linkIdentity({ accessToken, proof: { case: "password", value: { username, password } } });
    const byPassword = await t.connect.loginWithPassword({ username, password });
    expect(byPassword.user).toMatchObject({ id: userId, phoneNumber: number });

    const details = await t.admin.getUser({ accessToken: adminToken, userId: userId as string });
    expect(details.username).toBe(username);
    expect(details.wechatIdentities.map((w) => w.appId).sort()).toEqual([APP.appId, OTHER_APP.appId].sort());
    const linked = await t.admin.listAuditEvents({
      accessToken: adminToken,
      userId: userId as string,
      type: "identity.linked",
    });
    expect(linked.events.map((e) => e.details?.kind).sort()).toEqual(["password", "phone", "wechat"]);
  });

  it("refuses to link what another user holds, and a username taken", async () => {
    const number = newNumber();
    const holderOpenid = uniqueName("o");
    await t.connect.loginWithPhone(phoneCodes(holderOpenid, number));
    const openid = uniqueName("o");
    const login = await silentLogin(openid);
    const accessToken = login.tokens?.accessToken as string;

    const { code: phoneCode } = t.sandbox.issuePhoneCode({ appId: APP.appId, openid, phoneNumber: number });
    expect(
      await connectFailure(
        t.connect.linkIdentity({ accessToken, proof: { case: "phoneCode", value: phoneCode } }),
      ),
    ).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "ACCOUNT_CONFLICT",
    });
    // GetPhoneNumber with bind keeps a number with one user too.
    const { code: bindCode } = t.sandbox.issuePhoneCode({ appId: APP.appId, openid, phoneNumber: number });
    expect(
      await connectFailure(t.connect.getPhoneNumber({ accessToken, phoneCode: bindCode, bind: true })),
    ).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "ACCOUNT_CONFLICT",
    });
    const { code } = t.sandbox.issueCode({ appId: APP.appId, openid: holderOpenid });
    expect(
      await grpcFailure(
        t.grpc.call("linkIdentity", {
          accessToken,
          proof: { case: "wechat", value: { appId: APP.appId, code } },
        }),
      ),
    ).toEqual({ code: status.FAILED_PRECONDITION, reason: "ACCOUNT_CONFLICT" });
    expect(
      await connectFailure(
        t.connect.linkIdentity({
          accessToken,
          proof: { case: "password", value: { username: "alice", password: "a long enough password" } },
        }),
      ),
    ).toMatchObject({ code: Code.AlreadyExists, reason: "USERNAME_TAKEN" });
    expect(await connectFailure(t.connect.linkIdentity({ accessToken }))).toMatchObject({
      code: Code.InvalidArgument,
    });
  });

  it("of two overlapping merges one wins and the other is ABORTED", async () => {
    for (let round = 0; round < 3; round++) {
      const [a, b, c] = await Promise.all([1, 2, 3].map(() => silentLogin(uniqueName("o"))));
      const merge = (survivor: typeof a) =>
        t.admin.mergeUsers({
          accessToken: adminToken,
          survivorUserId: survivor?.user?.id as string,
          absorbedUserId: b?.user?.id as string,
          reason: "duplicate",
        });
      const outcomes = await Promise.allSettled([merge(a), merge(c)]);
      expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
      const refused = outcomes.find((o) => o.status === "rejected");
      expect(await connectFailure(Promise.reject((refused as PromiseRejectedResult).reason))).toMatchObject({
        code: Code.Aborted,
        reason: "MERGE_CONFLICT",
      });
    }
  });

  it("a ban racing a refresh: once DisableUser has answered, nothing of the session is accepted", async () => {
    const refused = new Set(["TOKEN_REVOKED", "USER_DISABLED"]);
    for (let round = 0; round < 5; round++) {
      const login = await silentLogin(uniqueName("o"));
      const [refresh, ban] = await Promise.allSettled([
        t.connect.refresh({ refreshToken: login.tokens?.refreshToken as string }),
        t.admin.disableUser({
          accessToken: adminToken,
          userId: login.user?.id as string,
          reason: "race",
        }),
      ]);
      expect(ban.status).toBe("fulfilled");
      const tokens = [login.tokens];
      if (refresh.status === "fulfilled") tokens.push(refresh.value.tokens);
      else expect(refused).toContain((await connectFailure(Promise.reject(refresh.reason))).reason);
      for (const pair of tokens) {
        expect(
          await grpcFailure(t.grpc.call("verifyToken", { accessToken: pair?.accessToken as string })),
        ).toEqual({ code: status.UNAUTHENTICATED, reason: "TOKEN_REVOKED" });
      }
      const last = tokens.at(-1);
      const again = await connectFailure(t.connect.refresh({ refreshToken: last?.refreshToken as string }));
      expect(refused).toContain(again.reason);
    }
  });
});
