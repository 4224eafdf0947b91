import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { uniqueName } from "../helpers/scratch-database.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

describe.each(BACKENDS)("profiles: defaults and UpdateProfile (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, { PROFILE_DEFAULT_AVATAR_URL: "https://cdn.example/default.png" });
  });
  afterAll(() => t.stop());

  const login = async (openid: string) => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId, openid });
    return t.connect.login({ appId: APP.appId, code });
  };

  it("gives a new user the default nickname and avatar, and keeps what they set, field by field, over both transports", async () => {
    const openid = uniqueName("o");
    const first = await login(openid);
    expect(first.user).toMatchObject({ nickname: "微信用户", avatarUrl: "https://cdn.example/default.png" });
    const accessToken = first.tokens?.accessToken as string;

    const named = await t.connect.updateProfile({ accessToken, nickname: "小明 🐟" });
    expect(named.user).toMatchObject({
      id: first.user?.id,
      appId: APP.appId,
      openid,
      nickname: "小明 🐟",
      avatarUrl: "https://cdn.example/default.png",
    });
    const pictured = await t.grpc.call("updateProfile", {
      accessToken,
      avatarUrl: "https://cdn.example/u/1.png",
    });
    expect(pictured.user).toMatchObject({ nickname: "小明 🐟", avatarUrl: "https://cdn.example/u/1.png" });
    expect((await login(openid)).user).toMatchObject({
      nickname: "小明 🐟",
      avatarUrl: "https://cdn.example/u/1.png",
    });
  });

  it("refuses a change without a field, a bad name or avatar, and a token that is not a live one", async () => {
    const first = await login(uniqueName("o"));
    const accessToken = first.tokens?.accessToken as string;
    for (const [request, field] of [
      [{ accessToken }, "nickname"],
      [{ accessToken, nickname: "" }, "nickname"],
      [{ accessToken, nickname: "名".repeat(33) }, "nickname"],
      [{ accessToken, nickname: "a\nb" }, "nickname"],
      [{ accessToken, avatarUrl: "http://cdn.example/a.png" }, "avatar_url"],
      [{ accessToken, avatarUrl: "not a url" }, "avatar_url"],
    ] as const) {
      expect(await connectFailure(t.connect.updateProfile(request))).toMatchObject({
        code: Code.InvalidArgument,
        field,
      });
    }
    expect((await t.connect.updateProfile({ accessToken, nickname: "名".repeat(32) })).user?.nickname).toBe(
      "名".repeat(32),
    );
    await t.connect.logout({ accessToken });
    expect(await grpcFailure(t.grpc.call("updateProfile", { accessToken, nickname: "x" }))).toMatchObject({
      reason: "TOKEN_REVOKED",
    });
  });
});
