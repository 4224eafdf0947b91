import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawDataSignature } from "../../src/domain/user-data.js";
import { movableClock } from "../helpers/clock.js";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const [APP, OTHER_APP] = TEST_APPS as [(typeof TEST_APPS)[0], (typeof TEST_APPS)[0]];

describe.each(BACKENDS)("DecryptUserData (%s backends)", (backend) => {
  const clock = movableClock();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, { REFRESH_TOKEN_IDLE_TTL: "1h", ACCESS_TOKEN_TTL: "2h" }, { clock });
  });
  afterAll(() => t.stop());

  /** A logged-in user: their access token, openid and the data WeChat would encrypt for them. */
  const login = async (openid = `o-${Math.random().toString(36).slice(2)}`, rotateSessionKey = false) => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId, openid, rotateSessionKey });
    const response = await t.connect.login({ appId: APP.appId, code });
    return { accessToken: response.tokens?.accessToken as string, openid };
  };
  const decrypt = (request: Parameters<TestApp["connect"]["decryptUserData"]>[0]) =>
    t.connect.decryptUserData(request);
  /** A refused call, sent over Connect and over gRPC: both must give the same code and reason. */
  const failure = async (request: Parameters<TestApp["connect"]["decryptUserData"]>[0]) => {
    const overConnect = await connectFailure(decrypt(request));
    const overGrpc = await grpcFailure(t.grpc.call("decryptUserData", request));
    expect(overGrpc).toEqual({ code: overConnect.code as number, reason: overConnect.reason });
    return overConnect;
  };

  it("decrypts over Connect and gRPC: the JSON as sent, as a Struct, and the watermark", async () => {
    const user = await login();
    const sealed = t.sandbox.encryptUserData(APP.appId, user.openid, {
      openId: user.openid,
      nickName: "小明",
    });
    const answer = await decrypt({ accessToken: user.accessToken, ...sealed });
    expect(JSON.parse(answer.json)).toMatchObject({ openId: user.openid, nickName: "小明" });
    expect(answer.data).toMatchObject({ openId: user.openid, nickName: "小明" });
    expect(answer.watermark?.appId).toBe(APP.appId);
    expect(Number(answer.watermark?.timestamp?.seconds)).toBeCloseTo(clock.now() / 1000, -1);

    const overGrpc = await t.grpc.call("decryptUserData", { accessToken: user.accessToken, ...sealed });
    expect(overGrpc.json).toBe(answer.json);
  });

  it("repairs base64 that was damaged in transit", async () => {
    const user = await login();
    const sealed = t.sandbox.encryptUserData(APP.appId, user.openid, { openId: user.openid });
    const damaged = {
      encryptedData: encodeURIComponent(sealed.encryptedData).replace(/(.{40})/g, "$1\n"),
      iv: sealed.iv.replaceAll("+", " "),
    };
    expect((await decrypt({ accessToken: user.accessToken, ...damaged })).data).toMatchObject({
      openId: user.openid,
    });
  });

  it("still decrypts data encrypted with the key WeChat replaced at the last wx.login()", async () => {
    const user = await login();
    const before = t.sandbox.encryptUserData(APP.appId, user.openid, { openId: user.openid, step: "before" });
    const again = await login(user.openid, true); // WeChat gives this user a new session_key
    const after = t.sandbox.encryptUserData(APP.appId, user.openid, { openId: user.openid, step: "after" });
    expect((await decrypt({ accessToken: again.accessToken, ...before })).data).toMatchObject({
      step: "before",
    });
    expect((await decrypt({ accessToken: again.accessToken, ...after })).data).toMatchObject({
      step: "after",
    });
  });

  it("checks raw_data against signature with the user's session_key", async () => {
    const user = await login();
    const sessionKey = t.sandbox.sessionKeyOf(APP.appId, user.openid) as string;
    const rawData = JSON.stringify({ nickName: "小明", gender: 1 });
    const sealed = t.sandbox.encryptUserData(APP.appId, user.openid, { openId: user.openid });
    const signature = rawDataSignature(rawData, sessionKey);
    await decrypt({ accessToken: user.accessToken, ...sealed, rawData, signature });
    expect(
      await failure({ accessToken: user.accessToken, ...sealed, rawData: `${rawData} `, signature }),
    ).toMatchObject({ code: Code.InvalidArgument, reason: "SIGNATURE_MISMATCH", field: "signature" });
    expect(await failure({ accessToken: user.accessToken, ...sealed, signature })).toMatchObject({
      code: Code.InvalidArgument,
      field: "raw_data",
    });
  });

  it("refuses every failure with its reason, and a failed decryption with one message", async () => {
    const user = await login();
    const other = await login();
    const token = user.accessToken;
    const sealed = t.sandbox.encryptUserData(APP.appId, user.openid, { openId: user.openid });

    expect(await failure({ accessToken: token, encryptedData: "ab$cd", iv: sealed.iv })).toMatchObject({
      code: Code.InvalidArgument,
      reason: "BAD_BASE64",
      field: "encrypted_data",
    });
    expect(
      await failure({ accessToken: token, encryptedData: sealed.encryptedData, iv: "AAAA" }),
    ).toMatchObject({
      code: Code.InvalidArgument,
      reason: "BAD_IV_LENGTH",
      field: "iv",
    });

    // Someone else's data, tampered data and truncated data all fail alike.
    const othersData = t.sandbox.encryptUserData(APP.appId, other.openid, { openId: other.openid });
    const bytes = Buffer.from(sealed.encryptedData, "base64");
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0x55;
    const messages = new Set<string>();
    for (const bad of [
      othersData,
      { encryptedData: bytes.toString("base64"), iv: sealed.iv },
      { encryptedData: sealed.encryptedData.slice(0, 24), iv: sealed.iv },
    ]) {
      const result = await failure({ accessToken: token, ...bad });
      expect(result).toMatchObject({ code: Code.InvalidArgument, reason: "DECRYPT_FAILED" });
      messages.add(result.message);
    }
    expect(messages.size).toBe(1);

    const forOtherApp = t.sandbox.encryptUserData(
      APP.appId,
      user.openid,
      { openId: user.openid },
      {
        appid: OTHER_APP.appId,
      },
    );
    expect(await failure({ accessToken: token, ...forOtherApp })).toMatchObject({
      reason: "WATERMARK_MISMATCH",
    });

    const namesOther = t.sandbox.encryptUserData(APP.appId, user.openid, { openId: other.openid });
    expect(await failure({ accessToken: token, ...namesOther })).toMatchObject({ reason: "USER_MISMATCH" });

    const old = t.sandbox.encryptUserData(
      APP.appId,
      user.openid,
      { openId: user.openid },
      {
        timestamp: Math.floor(clock.now() / 1000) - 600,
      },
    );
    expect(await failure({ accessToken: token, ...old, maxAgeSeconds: 300 })).toMatchObject({
      reason: "DATA_TOO_OLD",
    });
    await decrypt({ accessToken: token, ...old, maxAgeSeconds: 900 });

    expect(await grpcFailure(t.grpc.call("decryptUserData", { accessToken: token, ...othersData }))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      reason: "DECRYPT_FAILED",
    });
    expect(await failure({ accessToken: "not-a-token", ...sealed })).toMatchObject({
      code: Code.Unauthenticated,
    });
  });

  it("asks for a new login (FAILED_PRECONDITION, SESSION_KEY_EXPIRED) once the session_key is gone", async () => {
    const user = await login();
    const sealed = t.sandbox.encryptUserData(APP.appId, user.openid, { openId: user.openid });
    if (backend === "real") {
      const redis = new Redis((t.config.redis as { url: string }).url);
      await redis.del(`${t.config.redisKeyPrefix}sk:{${APP.appId}:${user.openid}}`);
      redis.disconnect();
    } else {
      clock.advance(3600_000 + 1000); // the vault keeps keys for REFRESH_TOKEN_IDLE_TTL (1h here)
    }
    expect(await failure({ accessToken: user.accessToken, ...sealed })).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "SESSION_KEY_EXPIRED",
    });
  });
});
