import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { protect } from "../../examples/protect-http-handler.js";
import {
  createLocalVerifier,
  createVerifier,
  type LocalVerifier,
  VerifyError,
} from "../../src/client/index.js";
import { rotateSigningKey } from "../../src/rotate-signing-key.js";
import { REAL_DATABASE_URL, REAL_REDIS_URL } from "../helpers/backends.js";
import { movableClock } from "../helpers/clock.js";
import { eventually } from "../helpers/eventually.js";
import { rejection } from "../helpers/failures.js";
import { metricValue, scrape } from "../helpers/metrics.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
const ORDERS_KEY = "orders-key-0123456789abcdef";
const CALLERS = JSON.stringify([
  { name: "bff", key: "bff-key-0123456789abcdef", methods: ["*"] },
  { name: "orders", key: ORDERS_KEY, methods: ["VerifyToken", "WatchRevocations"] },
]);
const asBff = { headers: { authorization: "Bearer bff-key-0123456789abcdef" } };
/** Waits until the verifier refuses the token as revoked. */
const refusedAsRevoked = (verifier: LocalVerifier, token: string) =>
  eventually(
    () =>
      verifier.verify(token).then(
        () => false,
        (e: unknown) => (e as VerifyError).reason === "TOKEN_REVOKED",
      ),
    "the local refusal",
  );
const kidOf = (token: string) =>
  JSON.parse(Buffer.from(token.split(".")[0] as string, "base64url").toString()).kid as string;

/** An internal service verifying tokens without a call, kept current by WatchRevocations. */
describe.each(BACKENDS)("the local verifier (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    // Persistent data on the embedded backend, so that pause() and resume() keep the sessions.
    t = await startTestApp(
      backend,
      { CALLERS, WATCH_REVOCATIONS_MAX_BEHIND: "20" },
      { persistentData: backend === "embedded" },
    );
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
      await refusedAsRevoked(verifier, tokens.accessToken);
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

  it("guards an HTTP handler (examples/protect-http-handler.ts): 200, then 401 TOKEN_REVOKED after the logout, 503 when blind", async () => {
    const verifier = local();
    const blind = createLocalVerifier({ address: "127.0.0.1:1" });
    const serve = async (v: Pick<typeof verifier, "verify">) => {
      const server = createServer(protect(v, (_req, res, user) => res.end(user.openid)));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
    };
    const guarded = await serve(verifier);
    const cutOff = await serve(blind);
    try {
      await verifier.ready();
      const tokens = await login();
      const get = (url: string) => fetch(url, { headers: { authorization: `Bearer ${tokens.accessToken}` } });
      expect((await get(guarded.url)).status).toBe(200);
      await t.connect.logout({ refreshToken: tokens.refreshToken }, asBff);
      await eventually(async () => (await get(guarded.url)).status === 401, "the refusal");
      expect(await (await get(guarded.url)).json()).toMatchObject({ error: { reason: "TOKEN_REVOKED" } });
      const unavailable = await get(cutOff.url);
      expect([unavailable.status, await unavailable.json()]).toEqual([
        503,
        { error: { code: "Unavailable", reason: "REVOCATIONS_STALE", message: expect.any(String) } },
      ]);
    } finally {
      guarded.server.close();
      cutOff.server.close();
      verifier.close();
      blind.close();
    }
  });

  it("is dropped once it stops reading, and recovers with a new snapshot that holds what it missed", async () => {
    const subscribers = async () =>
      metricValue(await scrape(`${t.httpUrl}/metrics`), "identity_revocation_subscribers");
    await expect.poll(subscribers).toBe(0);
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: t.app.grpcPort });
    const verifier = local({
      address: `127.0.0.1:${proxy.port}`,
      // The drop, not the staleness bound, is what this is about.
      maxStalenessMs: 600_000,
      // A 1 KiB HTTP/2 window: the connection's buffers fill after hundreds of messages.
      channelOptions: { "grpc-node.flow_control_window": 1024 },
    });
    try {
      await verifier.ready();
      expect(await subscribers()).toBe(1);
      proxy.stall(); // the verifier's process stops reading, as in a long pause
      const revoked: string[] = [];
      while ((await subscribers()) > 0) {
        if (revoked.length >= 3000) throw new Error(`still subscribed after ${revoked.length} revocations`);
        const sessions = await Promise.all(Array.from({ length: 25 }, login));
        await Promise.all(sessions.map((s) => t.connect.logout({ refreshToken: s.refreshToken }, asBff)));
        revoked.push(...sessions.map((s) => s.accessToken));
      }
      proxy.flow();
      await eventually(async () => {
        const answers = await Promise.all(
          revoked.map((token) =>
            verifier.verify(token).then(
              () => "accepted",
              (e: unknown) => (e as VerifyError).reason,
            ),
          ),
        );
        return answers.every((reason) => reason === "TOKEN_REVOKED");
      }, "every session ended during the stall refused");
      expect(verifier.lag()).toMatchObject({ ready: true, connected: true });
      expect(await subscribers()).toBe(1);
    } finally {
      verifier.close();
      proxy.close();
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

/**
 * A rotation (`npm run keys:rotate`, its function) while the verifier is subscribed: the next key
 * reaches it through the subscription ahead of its first token. Real backends: the rotation runs
 * apart from the service, as the command does, which the embedded database does not allow.
 */
describe.skipIf(!REAL_DATABASE_URL || !REAL_REDIS_URL)(
  "the local verifier across a key rotation (real backends)",
  () => {
    const PUBLISH_AHEAD_MS = 15 * 60_000; // SIGNING_KEY_PUBLISH_AHEAD's default
    // The service's clock starts that far in the past, so that once moved forward to the switch it
    // reads the verifier's own time again: the tokens it signs then are current for the verifier.
    const clock = movableClock();
    clock.advance(-PUBLISH_AHEAD_MS);
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp("real", { CALLERS }, { clock });
    });
    afterAll(() => t?.stop());

    it("learns the next key ahead of its switch and accepts its tokens from the first one, without reconnecting", async () => {
      const verifier = createLocalVerifier({
        address: `127.0.0.1:${t.app.grpcPort}`,
        callerKey: ORDERS_KEY,
        issuer: t.config.tokens.issuer,
      });
      const login = async () => {
        const { code } = t.sandbox.issueCode({ appId: APP.appId });
        return (await t.connect.login({ appId: APP.appId, code }, asBff)).tokens as {
          accessToken: string;
          refreshToken: string;
        };
      };
      try {
        await verifier.ready();
        const before = await login();
        expect((await verifier.verify(before.accessToken)).appId).toBe(APP.appId);
        const position = verifier.lag().position;

        const report = await rotateSigningKey(t.config, { clock });
        expect(report.rotated).toBe(true);
        // The new key is the only thing the stream has to say now.
        await eventually(() => verifier.lag().position !== position, "the new key over the subscription");

        clock.advance(PUBLISH_AHEAD_MS);
        const after = await login();
        expect(kidOf(after.accessToken)).toBe(report.kid);
        expect(kidOf(after.accessToken)).not.toBe(kidOf(before.accessToken));
        // At once, not eventually: the key arrived before anything was signed with it.
        expect((await verifier.verify(after.accessToken)).appId).toBe(APP.appId);
        expect((await verifier.verify(before.accessToken)).appId).toBe(APP.appId); // the old key still verifies
        expect(verifier.lag()).toMatchObject({ connected: true, disconnectedForMs: 0 });

        // The same subscription still carries revocations.
        await t.connect.logout({ refreshToken: after.refreshToken }, asBff);
        await refusedAsRevoked(verifier, after.accessToken);
      } finally {
        verifier.close();
      }
    });
  },
);
