import { generateKeyPairSync } from "node:crypto";
import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityService, LoginResponseSchema } from "../../src/gen/identity/v1/identity_pb.js";
import { movableClock } from "../helpers/clock.js";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const [APP_ONE, APP_TWO] = TEST_APPS as [(typeof TEST_APPS)[0], (typeof TEST_APPS)[0]];

describe.each(BACKENDS)("Login and VerifyToken (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend);
  });
  afterAll(() => t.stop());

  const login = (openid?: string, appId = APP_ONE.appId, unionid?: string) => {
    const { code } = t.sandbox.issueCode({ appId, openid, unionid });
    return t.connect.login({
      appId,
      code,
      client: { ip: "203.0.113.9", userAgent: "test", deviceId: "dev-1" },
    });
  };

  it("logs a user in over Connect and verifies the token over gRPC", async () => {
    const response = await login("o-alice", APP_ONE.appId, "u-alice");
    expect(response.newUser).toBe(true);
    expect(response.user).toMatchObject({
      appId: APP_ONE.appId,
      openid: "o-alice",
      unionid: "u-alice",
      roles: [],
    });
    expect(response.tokens?.tokenType).toBe("Bearer");
    expect(response.tokens?.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const accessExpiry = Number(response.tokens?.accessTokenExpiresAt?.seconds) * 1000 - Date.now();
    expect(accessExpiry).toBeGreaterThan(7100_000);
    expect(accessExpiry).toBeLessThanOrEqual(7200_000);

    const verified = await t.grpc.call("verifyToken", { accessToken: response.tokens?.accessToken ?? "" });
    expect(verified.claims).toMatchObject({
      userId: response.user?.id,
      appId: APP_ONE.appId,
      openid: "o-alice",
      unionid: "u-alice",
    });
    expect(verified.claims?.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    // The same answer from the warm path, and over Connect.
    const again = await t.grpc.call("verifyToken", { accessToken: response.tokens?.accessToken ?? "" });
    expect(again.claims).toEqual(verified.claims);
    const overConnect = await t.connect.verifyToken({ accessToken: response.tokens?.accessToken ?? "" });
    expect(overConnect.claims?.tokenId).toBe(verified.claims?.tokenId);
  });

  it("says new_user only on the first login of an identity", async () => {
    const first = await login("o-returning");
    const second = await login("o-returning");
    expect(first.newUser).toBe(true);
    expect(second.newUser).toBe(false);
    expect(second.user?.id).toBe(first.user?.id);
    expect(second.tokens?.refreshToken).not.toBe(first.tokens?.refreshToken);
  });

  it("links one person across two apps by unionid", async () => {
    const inOne = await login("o-one", APP_ONE.appId, "u-shared");
    const inTwo = await login("o-two", APP_TWO.appId, "u-shared");
    expect(inTwo.newUser).toBe(true);
    expect(inTwo.user?.id).toBe(inOne.user?.id);
  });

  it("makes one user of 40 parallel first logins, and exactly one response says new_user", async () => {
    const openid = `o-race-${backend}`;
    const results = await Promise.all(Array.from({ length: 40 }, () => login(openid)));
    expect(new Set(results.map((r) => r.user?.id)).size).toBe(1);
    expect(results.filter((r) => r.newUser)).toHaveLength(1);
  });

  it("answers a retried login (same code, same attempt_id) with the same session, asking WeChat once", async () => {
    const { code } = t.sandbox.issueCode({ appId: APP_ONE.appId, openid: "o-retry" });
    const before = t.sandbox.stats.code2SessionCalls;
    const first = await t.connect.login({ appId: APP_ONE.appId, code, attemptId: "attempt-1" });
    const retried = await t.connect.login({ appId: APP_ONE.appId, code, attemptId: "attempt-1" });
    expect(retried.user?.id).toBe(first.user?.id);
    expect(retried.tokens?.refreshToken).toBe(first.tokens?.refreshToken);
    const sessionOf = async (accessToken = "") =>
      (await t.grpc.call("verifyToken", { accessToken })).claims?.sessionId;
    expect(await sessionOf(retried.tokens?.accessToken)).toBe(await sessionOf(first.tokens?.accessToken));
    expect(t.sandbox.stats.code2SessionCalls - before).toBe(1);
  });

  it("refuses a used code without its attempt_id or with another as CODE_USED, over both transports", async () => {
    const { code } = t.sandbox.issueCode({ appId: APP_ONE.appId });
    await t.connect.login({ appId: APP_ONE.appId, code, attemptId: "mine" });
    for (const attemptId of ["", "theirs"]) {
      expect(await connectFailure(t.connect.login({ appId: APP_ONE.appId, code, attemptId }))).toMatchObject({
        code: Code.Unauthenticated,
        reason: "CODE_USED",
      });
      expect(await grpcFailure(t.grpc.call("login", { appId: APP_ONE.appId, code, attemptId }))).toEqual({
        code: grpc.status.UNAUTHENTICATED,
        reason: "CODE_USED",
      });
    }
  });

  it("makes one WeChat call and one session for concurrent tries of one attempt", async () => {
    t.sandbox.setLatency(100);
    const { code } = t.sandbox.issueCode({ appId: APP_ONE.appId, openid: "o-dupes" });
    const before = t.sandbox.stats.code2SessionCalls;
    const results = await Promise.all(
      Array.from({ length: 10 }, () => t.connect.login({ appId: APP_ONE.appId, code, attemptId: "a-1" })),
    ).finally(() => t.sandbox.setLatency(0));
    expect(new Set(results.map((r) => r.tokens?.refreshToken)).size).toBe(1);
    expect(t.sandbox.stats.code2SessionCalls - before).toBe(1);
  });

  it.each([
    [40029, Code.Unauthenticated, "INVALID_CODE"],
    [40163, Code.Unauthenticated, "CODE_USED"],
    [45011, Code.ResourceExhausted, "WECHAT_RATE_LIMITED"],
    [40226, Code.PermissionDenied, "HIGH_RISK_USER"],
    [40013, Code.FailedPrecondition, "WECHAT_APP_REJECTED"],
    ["http500", Code.Unavailable, "WECHAT_UNAVAILABLE"],
    ["malformed", Code.Unavailable, "WECHAT_UNAVAILABLE"],
    ["hang", Code.Unavailable, "WECHAT_UNAVAILABLE"],
  ] as const)("answers WeChat's %s with %s %s", async (fault, code, reason) => {
    t.sandbox.failNext(fault);
    const failure = await connectFailure(login());
    expect(failure).toMatchObject({ code, reason });
  });

  it("answers WeChat busy twice (-1, retried once) with UNAVAILABLE", async () => {
    t.sandbox.failNext(-1, 2);
    expect(await connectFailure(login())).toMatchObject({
      code: Code.Unavailable,
      reason: "WECHAT_UNAVAILABLE",
    });
  });

  it("refuses a used code with CODE_USED once its remembered exchange is for another app", async () => {
    const { code } = t.sandbox.issueCode({ appId: APP_ONE.appId });
    await t.connect.login({ appId: APP_ONE.appId, code });
    // Same code presented for the other app: a different exchange, and WeChat refuses it.
    expect(await connectFailure(t.connect.login({ appId: APP_TWO.appId, code }))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "INVALID_CODE",
    });
  });

  it.each([
    ["empty code", { appId: APP_ONE.appId, code: "" }, "code", "INVALID_ARGUMENT"],
    ["oversized code", { appId: APP_ONE.appId, code: "x".repeat(129) }, "code", "INVALID_ARGUMENT"],
    ["code with spaces", { appId: APP_ONE.appId, code: "abc def" }, "code", "INVALID_ARGUMENT"],
    ["unknown app", { appId: "wxnotours", code: "abc" }, "app_id", "UNKNOWN_APP"],
    ["no app with two configured", { code: "abc" }, "app_id", "INVALID_ARGUMENT"],
    [
      "oversized client ip",
      { appId: APP_ONE.appId, code: "abc", client: { ip: "1".repeat(65) } },
      "client.ip",
      "INVALID_ARGUMENT",
    ],
    [
      "oversized device id",
      { appId: APP_ONE.appId, code: "abc", client: { deviceId: "d".repeat(129) } },
      "client.device_id",
      "INVALID_ARGUMENT",
    ],
  ])(
    "refuses a login with %s as INVALID_ARGUMENT naming the field",
    async (_name, request, field, reason) => {
      const failure = await connectFailure(t.connect.login(request));
      expect(failure).toMatchObject({ code: Code.InvalidArgument, field, reason });
      expect(failure.message).toContain(field);
    },
  );

  it.each([
    ["client.ip", { ip: "10.0.0.1\u0000" }],
    ["client.user_agent", { userAgent: "Mozilla\u0000/5.0" }],
    ["client.device_id", { deviceId: "\u0000" }],
  ])("refuses a NUL in %s before asking WeChat, so the code still works", async (field, client) => {
    const { code } = t.sandbox.issueCode({ appId: APP_ONE.appId });
    const before = t.sandbox.stats.code2SessionCalls;
    const failure = await connectFailure(t.connect.login({ appId: APP_ONE.appId, code, client }));
    expect(failure).toMatchObject({ code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field });
    expect(t.sandbox.stats.code2SessionCalls).toBe(before);
    expect((await t.connect.login({ appId: APP_ONE.appId, code })).tokens?.accessToken).toBeTruthy();
  });

  it("refuses an empty token as INVALID_ARGUMENT and garbage as UNAUTHENTICATED, over gRPC", async () => {
    expect(await grpcFailure(t.grpc.call("verifyToken", { accessToken: "" }))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      reason: "INVALID_ARGUMENT",
    });
    for (const accessToken of ["garbage", "a.b.c", "x".repeat(5000), "eyJhbGciOiJub25lIn0.e30."]) {
      expect(await grpcFailure(t.grpc.call("verifyToken", { accessToken }))).toEqual({
        code: grpc.status.UNAUTHENTICATED,
        reason: "TOKEN_INVALID",
      });
    }
  });

  it("refuses a token forged with another key under our kid", async () => {
    const real = await login();
    const header = JSON.parse(
      Buffer.from(real.tokens?.accessToken.split(".")[0] ?? "", "base64url").toString(),
    );
    const payload = JSON.parse(
      Buffer.from(real.tokens?.accessToken.split(".")[1] ?? "", "base64url").toString(),
    );
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const forged = await new SignJWT({ ...payload, roles: ["admin"] })
      .setProtectedHeader(header)
      .sign(privateKey);
    expect(await grpcFailure(t.grpc.call("verifyToken", { accessToken: forged }))).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      reason: "TOKEN_INVALID",
    });
  });

  it("refuses oversized gRPC messages in the transport, and undecodable ones as INVALID_ARGUMENT", async () => {
    const huge = await grpcFailure(
      t.grpc.call("verifyToken", { accessToken: "x".repeat(t.config.maxRequestBytes + 10) }),
    );
    expect(huge.code).toBe(grpc.status.RESOURCE_EXHAUSTED);

    const raw = new grpc.Client(`127.0.0.1:${t.app.grpcPort}`, grpc.credentials.createInsecure());
    const status = await new Promise<grpc.ServiceError | null>((resolve) => {
      raw.makeUnaryRequest(
        "/identity.v1.IdentityService/VerifyToken",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // field 1 claiming a 4 GB length
        (err) => resolve(err),
      );
    });
    raw.close();
    expect(status?.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("refuses an oversized Connect body", async () => {
    const failure = await t.connect
      .verifyToken({ accessToken: "x".repeat(t.config.maxRequestBytes + 10) })
      .catch((e) => e);
    expect(ConnectError.from(failure).code).toBe(Code.ResourceExhausted);
  });

  it("refuses another app's token when the caller names its app (expected_app_id), over gRPC", async () => {
    const token = (await login()).tokens?.accessToken ?? "";
    const mine = await t.grpc.call("verifyToken", { accessToken: token, expectedAppId: APP_ONE.appId });
    expect(mine.claims?.appId).toBe(APP_ONE.appId);
    expect(
      await grpcFailure(t.grpc.call("verifyToken", { accessToken: token, expectedAppId: APP_TWO.appId })),
    ).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      reason: "TOKEN_APP_MISMATCH",
    });
  });

  it("serves Connect over h2c and gRPC-Web too", async () => {
    const token = (await login()).tokens?.accessToken ?? "";
    const h2c = createClient(
      IdentityService,
      createConnectTransport({ baseUrl: t.httpUrl, httpVersion: "2" }),
    );
    expect((await h2c.verifyToken({ accessToken: token })).claims?.appId).toBe(APP_ONE.appId);
    const web = createClient(
      IdentityService,
      createGrpcWebTransport({ baseUrl: t.httpUrl, httpVersion: "1.1" }),
    );
    expect((await web.verifyToken({ accessToken: token })).claims?.appId).toBe(APP_ONE.appId);
  });

  it("serves /healthz and the JWKS that verifies its tokens", async () => {
    const health = await fetch(`${t.httpUrl}/healthz`);
    expect(health.status).toBe(200);
    const jwksResponse = await fetch(`${t.httpUrl}/.well-known/jwks.json`);
    expect(jwksResponse.headers.get("cache-control")).toMatch(/max-age=\d+/);
    const jwks = (await jwksResponse.json()) as { keys: Array<Record<string, string>> };
    const token = (await login()).tokens?.accessToken ?? "";
    const kid = JSON.parse(Buffer.from(token.split(".")[0] ?? "", "base64url").toString()).kid;
    expect(jwks.keys.find((k) => k.kid === kid)).toMatchObject({
      kty: "EC",
      crv: "P-256",
      alg: "ES256",
      use: "sig",
    });
    expect(JSON.stringify(jwks)).not.toMatch(/"d"/); // public parts only
  });

  it("never puts the session_key, app secret or tokens into responses or logs", async () => {
    const response = await login("o-secrets");
    const sessionKey = t.sandbox.sessionKeyOf(APP_ONE.appId, "o-secrets") as string;
    const body = toJsonString(LoginResponseSchema, response);
    expect(body).not.toContain(sessionKey);
    for (const app of TEST_APPS) expect(body).not.toContain(app.appSecret);
    t.sandbox.failNext(40013);
    await connectFailure(login());
    t.sandbox.failNext("http500");
    await connectFailure(login());
    const logs = JSON.stringify(t.log.lines);
    expect(logs).not.toContain(sessionKey);
    expect(logs).not.toContain(response.tokens?.refreshToken);
    expect(logs).not.toContain(response.tokens?.accessToken);
    for (const app of TEST_APPS) expect(logs).not.toContain(app.appSecret);
    expect(t.log.lines.some((l) => l.fields?.reason === "WECHAT_APP_REJECTED")).toBe(true);
  });
});

describe.each(BACKENDS)("token expiry (%s backends)", (backend) => {
  let t: TestApp;
  // A clock the test moves: a slow machine must not expire the token before the first call.
  const clock = movableClock();
  beforeAll(async () => {
    t = await startTestApp(backend, { ACCESS_TOKEN_TTL: "60s", TOKEN_LEEWAY: "0" }, { clock });
  });
  afterAll(() => t.stop());

  it("expires a token on the warm path as well as the cold one", async () => {
    const { code } = t.sandbox.issueCode({ appId: APP_ONE.appId });
    const { tokens } = await t.connect.login({ appId: APP_ONE.appId, code });
    const accessToken = tokens?.accessToken ?? "";
    await t.grpc.call("verifyToken", { accessToken }); // now cached
    clock.advance(60_001);
    expect(await grpcFailure(t.grpc.call("verifyToken", { accessToken }))).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      reason: "TOKEN_EXPIRED",
    });
  });
});
