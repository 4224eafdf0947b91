import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { movableClock } from "../helpers/clock.js";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

describe.each(BACKENDS)("Logout (%s backends)", (backend) => {
  const clock = movableClock();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, { ACCESS_TOKEN_TTL: "300" }, { clock });
  });
  afterAll(() => t.stop());

  /** Logs in; the same openid again gives the same user a second session. */
  const login = async (openid?: string) => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId, ...(openid ? { openid } : {}) });
    const response = await t.connect.login({ appId: APP.appId, code });
    return {
      ...(response.tokens as NonNullable<typeof response.tokens>),
      openid: response.user?.openid as string,
    };
  };
  const verify = (accessToken: string) => t.grpc.call("verifyToken", { accessToken });
  const revokedVerify = async (accessToken: string) =>
    expect(await grpcFailure(verify(accessToken))).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      reason: "TOKEN_REVOKED",
    });
  const revokedRefresh = async (refreshToken: string) =>
    expect(await connectFailure(t.connect.refresh({ refreshToken }))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "TOKEN_REVOKED",
    });

  it("ends the session behind an access token: its access and refresh tokens stop working", async () => {
    const session = await login();
    await verify(session.accessToken); // cached as valid first, so the cache cannot hide the revocation
    await t.connect.logout({ accessToken: session.accessToken });
    await revokedVerify(session.accessToken);
    await revokedRefresh(session.refreshToken);
  });

  it("ends the session behind a refresh token, over gRPC too", async () => {
    const session = await login();
    await t.grpc.call("logout", { refreshToken: session.refreshToken });
    await revokedVerify(session.accessToken);
    await revokedRefresh(session.refreshToken);
  });

  it("is idempotent: again, unknown, forged or expired tokens all answer OK", async () => {
    const session = await login();
    await t.connect.logout({ accessToken: session.accessToken });
    await t.connect.logout({ accessToken: session.accessToken }); // already revoked
    await t.connect.logout({ refreshToken: "B".repeat(43) }); // never issued

    // A forged token (its signature altered) ends nothing.
    const other = await login();
    const [header, payload, signature] = other.accessToken.split(".") as [string, string, string];
    const forged = `${header}.${payload}.${signature.startsWith("A") ? "B" : "A"}${signature.slice(1)}`;
    await t.connect.logout({ accessToken: forged });
    expect((await verify(other.accessToken)).claims?.openid).toBe(other.openid);

    // An expired access token still ends its session, which could otherwise be refreshed.
    const expiring = await login();
    clock.advance(400_000);
    expect(await grpcFailure(verify(expiring.accessToken))).toMatchObject({ reason: "TOKEN_EXPIRED" });
    await t.connect.logout({ accessToken: expiring.accessToken });
    await revokedRefresh(expiring.refreshToken);
  });

  it("with all_sessions ends every session of the user, and nobody else's", async () => {
    const phone = await login();
    const tablet = await login(phone.openid);
    const stranger = await login();
    await t.connect.logout({ refreshToken: tablet.refreshToken, allSessions: true });
    await revokedVerify(phone.accessToken);
    await revokedVerify(tablet.accessToken);
    await revokedRefresh(phone.refreshToken);
    expect((await verify(stranger.accessToken)).claims?.openid).toBe(stranger.openid);
    await t.connect.refresh({ refreshToken: stranger.refreshToken });
  });

  it("leaves no working token when it races refreshes of the session (10 rounds)", async () => {
    for (let round = 0; round < 10; round++) {
      const session = await login();
      const [refreshed] = await Promise.allSettled([
        t.connect.refresh({ refreshToken: session.refreshToken }),
        t.connect.logout({ refreshToken: session.refreshToken }),
      ]);
      await revokedVerify(session.accessToken);
      if (refreshed.status === "fulfilled") {
        const tokens = refreshed.value.tokens;
        await revokedVerify(tokens?.accessToken as string);
        await revokedRefresh(tokens?.refreshToken as string);
      }
    }
  });

  it("refuses a request with no token, or with values that cannot be tokens of ours", async () => {
    expect(await connectFailure(t.connect.logout({}))).toMatchObject({
      code: Code.InvalidArgument,
      field: "access_token",
      message: "access_token: an access_token or a refresh_token is required",
    });
    expect(await connectFailure(t.connect.logout({ accessToken: "not a jwt" }))).toMatchObject({
      code: Code.InvalidArgument,
      field: "access_token",
    });
    expect(await connectFailure(t.connect.logout({ refreshToken: "short" }))).toMatchObject({
      code: Code.InvalidArgument,
      field: "refresh_token",
    });
  });
});
