import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { uniqueName } from "../helpers/scratch-database.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

describe.each(BACKENDS)("ListSessions and EndSession (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend);
  });
  afterAll(() => t.stop());

  /** A session of the user with this openid, started from `deviceId`. */
  const login = async (openid: string, deviceId: string) => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId, openid });
    const response = await t.connect.login({
      appId: APP.appId,
      code,
      client: { ip: "203.0.113.7", userAgent: `phone ${deviceId}`, deviceId },
    });
    const tokens = response.tokens as NonNullable<typeof response.tokens>;
    const claims = (await t.grpc.call("verifyToken", { accessToken: tokens.accessToken })).claims;
    return { ...tokens, sessionId: claims?.sessionId as string };
  };

  it("lists the user's live sessions, newest first, with their device and the current one marked, over both transports", async () => {
    const openid = uniqueName("o");
    const phone = await login(openid, "phone");
    const tablet = await login(openid, "tablet");
    await login(uniqueName("someone-else"), "theirs");

    const listed = (await t.connect.listSessions({ accessToken: phone.accessToken })).sessions;
    expect(listed.map((s) => [s.sessionId, s.deviceId, s.current])).toEqual([
      [tablet.sessionId, "tablet", false],
      [phone.sessionId, "phone", true],
    ]);
    expect(listed[1]).toMatchObject({ appId: APP.appId, clientIp: "203.0.113.7", userAgent: "phone phone" });
    expect(Math.abs(timestampMs(listed[1]?.createdAt as Timestamp) - Date.now())).toBeLessThan(60_000);
    expect(listed[1]?.lastRefreshedAt).toBeUndefined();

    await t.connect.refresh({ refreshToken: phone.refreshToken });
    const overGrpc = (await t.grpc.call("listSessions", { accessToken: tablet.accessToken })).sessions;
    expect(overGrpc.map((s) => [s.sessionId, s.current])).toEqual([
      [tablet.sessionId, true],
      [phone.sessionId, false],
    ]);
    expect(overGrpc[1]?.lastRefreshedAt).toBeDefined();
  });

  it("ends another session of the user: its tokens stop working on every path", async () => {
    const openid = uniqueName("o");
    const phone = await login(openid, "phone");
    const lost = await login(openid, "lost-phone");
    expect(
      (await t.connect.endSession({ accessToken: phone.accessToken, sessionId: lost.sessionId }))
        .sessionsEnded,
    ).toBe(1);

    expect(await grpcFailure(t.grpc.call("verifyToken", { accessToken: lost.accessToken }))).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      reason: "TOKEN_REVOKED",
    });
    expect(await connectFailure(t.connect.refresh({ refreshToken: lost.refreshToken }))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "TOKEN_REVOKED",
    });
    const left = (await t.connect.listSessions({ accessToken: phone.accessToken })).sessions;
    expect(left.map((s) => s.sessionId)).toEqual([phone.sessionId]);
    // Ended already: nothing more to end.
    expect(
      (await t.grpc.call("endSession", { accessToken: phone.accessToken, sessionId: lost.sessionId }))
        .sessionsEnded,
    ).toBe(0);
  });

  it("never ends another user's session, and says no more about it than about an unknown id", async () => {
    const mine = await login(uniqueName("o"), "mine");
    const theirs = await login(uniqueName("o"), "theirs");
    for (const sessionId of [theirs.sessionId, "00000000-0000-7000-8000-000000000000", "not-a-uuid"]) {
      expect((await t.connect.endSession({ accessToken: mine.accessToken, sessionId })).sessionsEnded).toBe(
        0,
      );
    }
    expect((await t.grpc.call("verifyToken", { accessToken: theirs.accessToken })).claims?.sessionId).toBe(
      theirs.sessionId,
    );
  });

  it("with all_others ends every session of the user but the asking one", async () => {
    const openid = uniqueName("o");
    const others = [await login(openid, "a"), await login(openid, "b"), await login(openid, "c")];
    const keeper = await login(openid, "keeper");
    expect(
      (await t.grpc.call("endSession", { accessToken: keeper.accessToken, allOthers: true })).sessionsEnded,
    ).toBe(3);
    for (const other of others) {
      expect(await grpcFailure(t.grpc.call("verifyToken", { accessToken: other.accessToken }))).toMatchObject(
        {
          reason: "TOKEN_REVOKED",
        },
      );
    }
    const left = (await t.connect.listSessions({ accessToken: keeper.accessToken })).sessions;
    expect(left.map((s) => [s.sessionId, s.current])).toEqual([[keeper.sessionId, true]]);
  });

  it("refuses a request naming both or neither, and a token that is not a live one", async () => {
    const session = await login(uniqueName("o"), "phone");
    for (const request of [
      { accessToken: session.accessToken },
      { accessToken: session.accessToken, sessionId: session.sessionId, allOthers: true },
    ]) {
      expect(await connectFailure(t.connect.endSession(request))).toMatchObject({
        code: Code.InvalidArgument,
        field: "session_id",
      });
    }
    expect(await connectFailure(t.connect.listSessions({ accessToken: "" }))).toMatchObject({
      code: Code.InvalidArgument,
    });
    expect(await connectFailure(t.connect.listSessions({ accessToken: "a.b.c" }))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "TOKEN_INVALID",
    });
    // Its own session ended: the token is refused from then on.
    expect(
      (await t.connect.endSession({ accessToken: session.accessToken, sessionId: session.sessionId }))
        .sessionsEnded,
    ).toBe(1);
    expect(await connectFailure(t.connect.listSessions({ accessToken: session.accessToken }))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "TOKEN_REVOKED",
    });
  });
});
