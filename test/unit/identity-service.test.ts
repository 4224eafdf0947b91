import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityError } from "../../src/domain/errors.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { IdentityService } from "../../src/gen/identity/v1/identity_pb.js";
import type { UseCases } from "../../src/identity/use-cases.js";
import { createRevocationStream } from "../../src/revocation/revocation-stream.js";
import { createIdentityServiceImpl } from "../../src/transport/identity-service/identity-service.js";
import { REASONS } from "../../src/wire/errors.js";
import { connectFailure } from "../helpers/failures.js";
import { memoryLogger, TEST_APPS } from "../helpers/test-app.js";
import { createUseCaseWorld, type UseCaseWorld } from "../helpers/use-case-world.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

/** The ServiceImpl on Connect's in-memory router transport: the proto mapping and the error table. */
function clientFor(useCases: UseCases, log = memoryLogger()) {
  const transport = createRouterTransport(({ service }) => {
    service(
      IdentityService,
      createIdentityServiceImpl(useCases, log, {
        verifyCacheBytes: 1024 * 1024,
        revocationStream: createRevocationStream({ snapshot: () => [], watch: () => () => {} }),
      }),
    );
  });
  return createClient(IdentityService, transport);
}

describe("the IdentityService mapping (in-memory router transport)", () => {
  let w: UseCaseWorld;
  let client: ReturnType<typeof clientFor>;
  beforeAll(async () => {
    w = await createUseCaseWorld();
    client = clientFor(w.useCases, w.log);
  });
  afterAll(() => w.close());

  it("maps Login, VerifyToken, Refresh and Logout requests and responses", async () => {
    const { code } = w.sandbox.issueCode({ appId: APP.appId, openid: "grace" });
    const login = await client.login({ appId: APP.appId, code, client: { ip: "10.1.1.1", userAgent: "ua" } });
    expect(login.newUser).toBe(true);
    expect(login.user).toMatchObject({ appId: APP.appId, openid: "grace", unionid: "", phoneNumber: "" });
    expect(login.tokens).toMatchObject({ tokenType: "Bearer" });
    const accessToken = login.tokens?.accessToken ?? "";
    const expiresAt = Number(login.tokens?.accessTokenExpiresAt?.seconds);

    const verified = await client.verifyToken({ accessToken });
    expect(verified.claims).toMatchObject({ userId: login.user?.id, openid: "grace", appId: APP.appId });
    expect(Number(verified.claims?.expiresAt?.seconds)).toBe(expiresAt);
    expect(expiresAt - Number(verified.claims?.issuedAt?.seconds)).toBe(
      w.config.tokens.accessTokenTtlMs / 1000,
    );

    const refreshed = await client.refresh({ refreshToken: login.tokens?.refreshToken ?? "" });
    expect(refreshed.tokens?.refreshToken).not.toBe(login.tokens?.refreshToken);
    await client.logout({ accessToken });
    expect(await connectFailure(client.verifyToken({ accessToken }))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "TOKEN_REVOKED",
    });
  });

  it("answers each reason with its code from the one table, and ErrorInfo naming the field", async () => {
    expect(await connectFailure(client.verifyToken({ accessToken: "" }))).toMatchObject({
      code: REASONS.INVALID_ARGUMENT.code,
      reason: "INVALID_ARGUMENT",
      field: "access_token",
    });
    expect(await connectFailure(client.login({ appId: APP.appId, code: "never-issued" }))).toMatchObject({
      code: REASONS.INVALID_CODE.code,
      reason: "INVALID_CODE",
    });
    expect(await connectFailure(client.refresh({ refreshToken: "A".repeat(43) }))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "TOKEN_INVALID",
    });
  });

  it("refuses what breaks the proto's buf.validate rules as INVALID_ARGUMENT naming the field, before WeChat", async () => {
    const before = w.sandbox.stats.code2SessionCalls;
    const login = (request: Parameters<typeof client.login>[0]) => connectFailure(client.login(request));
    const cases: Array<[Promise<{ code: Code; reason?: string; field?: string; message: string }>, string]> =
      [
        [login({ appId: APP.appId, code: "" }), "code"],
        [login({ appId: APP.appId, code: "x".repeat(129) }), "code"],
        [login({ appId: APP.appId, code: "abc def" }), "code"],
        [login({ appId: APP.appId, code: "c", attemptId: "not printable" }), "attempt_id"],
        [login({ appId: APP.appId, code: "c", client: { ip: "10.0.0.1\u0000" } }), "client.ip"],
        [
          login({ appId: APP.appId, code: "c", client: { userAgent: "ua\r\nX-Injected: 1" } }),
          "client.user_agent",
        ],
        [login({ appId: APP.appId, code: "c", client: { deviceId: "d".repeat(129) } }), "client.device_id"],
        [connectFailure(client.refresh({ refreshToken: "" })), "refresh_token"],
        [connectFailure(client.logout({})), "access_token"],
        [connectFailure(client.getPhoneNumber({ accessToken: "t", phoneCode: "" })), "phone_code"],
        [
          connectFailure(
            client.decryptUserData({ accessToken: "t", encryptedData: "e", iv: "i", rawData: "{}" }),
          ),
          "signature",
        ],
        [
          connectFailure(
            client.decryptUserData({ accessToken: "t", encryptedData: "e", iv: "i", signature: "ab" }),
          ),
          "raw_data",
        ],
      ];
    for (const [failure, field] of cases) {
      expect(await failure).toMatchObject({ code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field });
    }
    expect((await login({ appId: APP.appId, code: "" })).message).toBe("code: must be at least 1 characters");
    expect((await connectFailure(client.logout({}))).message).toBe(
      "access_token: an access_token or a refresh_token is required",
    );
    expect(w.sandbox.stats.code2SessionCalls).toBe(before);
  });

  it("logs the failures the table marks (WeChat down), and not a user's bad code", async () => {
    const before = w.log.lines.length;
    await connectFailure(client.login({ appId: APP.appId, code: "never-issued" }));
    expect(w.log.lines.length).toBe(before);

    w.sandbox.failNext("http500");
    const { code } = w.sandbox.issueCode({ appId: APP.appId });
    expect(await connectFailure(client.login({ appId: APP.appId, code }))).toMatchObject({
      code: Code.Unavailable,
      reason: "WECHAT_UNAVAILABLE",
    });
    expect(w.log.lines.slice(before)).toEqual([
      expect.objectContaining({
        level: "warn",
        message: "dependency failure",
        fields: expect.objectContaining({ rpc: "Login", reason: "WECHAT_UNAVAILABLE" }),
      }),
    ]);
  });
});

describe("an error that is not an IdentityError", () => {
  it("is answered INTERNAL without its text, with reason INTERNAL, and logged without its message", async () => {
    const log = memoryLogger();
    const failing = {
      login: async () => {
        throw new TypeError("session_key=secret-material");
      },
    } as unknown as UseCases;
    const err = await clientFor(failing, log)
      .login({ code: "c" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Internal);
    expect((err as ConnectError).rawMessage).toBe("internal error");
    expect((err as ConnectError).findDetails(ErrorInfoSchema)[0]?.reason).toBe("INTERNAL");
    expect(JSON.stringify(log.lines)).not.toContain("secret-material");
    expect(log.lines).toEqual([
      expect.objectContaining({
        level: "error",
        message: "unexpected error",
        fields: expect.objectContaining({ rpc: "Login", error: "TypeError" }),
      }),
    ]);
  });

  it("logs only the stack's frames, never what a driver appended to it (a query and its values)", async () => {
    const log = memoryLogger();
    const failing = {
      logout: async () => {
        const err = new Error("insert failed: 10.0.0.1\u0000");
        err.stack = `Error: insert failed\n    at insert (pg.js:1:1)\nquery: insert into sessions values ('secret-value')\n    at logout (logout.js:2:2)`;
        throw err;
      },
    } as unknown as UseCases;
    await clientFor(failing, log)
      .logout({ accessToken: "a.b.c" })
      .catch(() => {});
    const logged = JSON.stringify(log.lines);
    expect(logged).toContain("at insert (pg.js:1:1)");
    expect(logged).toContain("at logout (logout.js:2:2)");
    expect(logged).not.toContain("secret-value");
    expect(logged).not.toContain("insert failed");
  });

  it("keeps the code of a domain error thrown as such", async () => {
    const failing = {
      refresh: async () => {
        throw new IdentityError("STORAGE_CONFLICT", "concurrent update, retry");
      },
    } as unknown as UseCases;
    expect(await connectFailure(clientFor(failing).refresh({ refreshToken: "x" }))).toMatchObject({
      code: Code.Aborted,
      reason: "STORAGE_CONFLICT",
    });
  });
});
