import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalVerifier, createVerifier, VerifyError } from "../../src/client/index.js";
import { eventually } from "../helpers/eventually.js";
import { rejection } from "../helpers/failures.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
const ORDERS_KEY = "orders-key-0123456789abcdef";
const CALLERS = JSON.stringify([
  { name: "bff", key: "bff-key-0123456789abcdef", methods: ["*"] },
  { name: "orders", key: ORDERS_KEY, methods: ["VerifyToken", "WatchRevocations"] },
]);
const asBff = { headers: { authorization: "Bearer bff-key-0123456789abcdef" } };

/** An internal service verifying tokens without a call, kept current by WatchRevocations. */
describe.each(BACKENDS)("the local verifier (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    // Persistent data on the embedded backend, so that pause() and resume() keep the sessions.
    t = await startTestApp(backend, { CALLERS }, { persistentData: backend === "embedded" });
  });
  afterAll(() => t.stop());

  const local = (options: Partial<Parameters<typeof createLocalVerifier>[0]> = {}) =>
    createLocalVerifier({
      address: `127.0.0.1:${t.app.grpcPort}`,
      callerKey: ORDERS_KEY,
      issuer: t.config.tokens.issuer,
      maxReconnectBackoffMs: 200,
      ...options,
    });
  const login = async () => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    return (await t.connect.login({ appId: APP.appId, code }, asBff)).tokens as {
      accessToken: string;
      refreshToken: string;
    };
  };

  it("accepts a valid token, and refuses it once its session was logged out", async () => {
    const verifier = local();
    try {
      await verifier.ready();
      const tokens = await login();
      const user = await verifier.verify(tokens.accessToken);
      expect(user.appId).toBe(APP.appId);
      expect(verifier.lag()).toMatchObject({ ready: true, connected: true, disconnectedForMs: 0 });
      await t.connect.logout({ refreshToken: tokens.refreshToken }, asBff);
      await eventually(
        () =>
          verifier.verify(tokens.accessToken).then(
            () => false,
            (e: unknown) => (e as VerifyError).reason === "TOKEN_REVOKED",
          ),
        "the local refusal",
      );
      // Forgeries are refused as the service refuses them.
      expect(await rejection(verifier.verify(`${tokens.accessToken}x`), VerifyError)).toMatchObject({
        kind: "unauthenticated",
        reason: "TOKEN_INVALID",
      });
    } finally {
      verifier.close();
    }
  });

  it("knows sessions revoked before it subscribed (the snapshot)", async () => {
    const tokens = await login();
    await t.connect.logout({ refreshToken: tokens.refreshToken }, asBff);
    const verifier = local();
    try {
      await verifier.ready();
      expect(await rejection(verifier.verify(tokens.accessToken), VerifyError)).toMatchObject({
        reason: "TOKEN_REVOKED",
      });
    } finally {
      verifier.close();
    }
  });

  it("fails closed before its first snapshot, or asks its fallback", async () => {
    const nowhere = createLocalVerifier({ address: "127.0.0.1:1", maxReconnectBackoffMs: 200 });
    const tokens = await login();
    expect(await rejection(nowhere.verify(tokens.accessToken), VerifyError)).toMatchObject({
      kind: "unavailable",
      reason: "REVOCATIONS_STALE",
    });
    nowhere.close();
    const remote = createVerifier({ address: `127.0.0.1:${t.app.grpcPort}`, callerKey: ORDERS_KEY });
    const withFallback = createLocalVerifier({ address: "127.0.0.1:1", fallback: remote });
    expect((await withFallback.verify(tokens.accessToken)).appId).toBe(APP.appId);
    withFallback.close();
    remote.close();
  });

  it("answers unavailable once disconnected past its staleness bound, and recovers when the service is back", async () => {
    const verifier = local({ maxStalenessMs: 300 });
    try {
      await verifier.ready();
      const tokens = await login();
      expect((await verifier.verify(tokens.accessToken)).appId).toBe(APP.appId);
      await t.pause();
      await eventually(() => verifier.lag().disconnectedForMs > 300, "the staleness bound to pass");
      const refused = await rejection(verifier.verify(tokens.accessToken), VerifyError);
      expect(refused).toMatchObject({ kind: "unavailable", reason: "REVOCATIONS_STALE" });
      await t.resume();
      await eventually(() => verifier.lag().connected, "the subscription to come back", 10_000);
      expect((await verifier.verify(tokens.accessToken)).appId).toBe(APP.appId);
    } finally {
      verifier.close();
    }
  });
});
