import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { protect } from "../../examples/protect-http-handler.js";
import { createIdentityClient, createVerifier, VerifyError } from "../../src/client/index.js";
import { rejection } from "../helpers/failures.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

/** The clients we ship for callers: the BFF's Connect client and the internal services' verifier. */
describe.each(BACKENDS)("client package (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend);
  });
  afterAll(() => t.stop());

  const login = async () => {
    const identity = createIdentityClient({ baseUrl: t.httpUrl, timeoutMs: 2000 });
    const { code, openid } = t.sandbox.issueCode({ appId: APP.appId });
    const response = await identity.login({
      appId: APP.appId,
      code,
      client: { ip: "203.0.113.7", userAgent: "ua" },
    });
    return { identity, openid, tokens: response.tokens as NonNullable<typeof response.tokens> };
  };

  it("verifies a token over gRPC and hands back the user; refusals are typed", async () => {
    const { identity, openid, tokens } = await login();
    const verifier = createVerifier({ address: `127.0.0.1:${t.app.grpcPort}` });
    try {
      const user = await verifier.verify(tokens.accessToken);
      expect(user).toMatchObject({ appId: APP.appId, openid });
      expect(user.expiresAt).toBeGreaterThan(Date.now());

      expect(await rejection(verifier.verify("garbage"), VerifyError)).toMatchObject({
        kind: "unauthenticated",
        reason: "TOKEN_INVALID",
      });
      expect(await rejection(verifier.verify(""), VerifyError)).toMatchObject({ kind: "invalid" });
      await identity.logout({ accessToken: tokens.accessToken });
      expect(await rejection(verifier.verify(tokens.accessToken), VerifyError)).toMatchObject({
        kind: "unauthenticated",
        reason: "TOKEN_REVOKED",
      });
    } finally {
      verifier.close();
    }
  });

  it("guards an HTTP handler (examples/protect-http-handler.ts): 200 with the user, 401 with the reason", async () => {
    const { tokens, openid } = await login();
    const verifier = createVerifier({ address: `127.0.0.1:${t.app.grpcPort}` });
    const server = createServer(protect(verifier, (_req, res, user) => res.end(user.openid)));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      const ok = await fetch(url, { headers: { authorization: `Bearer ${tokens.accessToken}` } });
      expect([ok.status, await ok.text()]).toEqual([200, openid]);
      const missing = await fetch(url);
      expect([missing.status, await missing.json()]).toEqual([
        401,
        { error: { code: "Unauthenticated", reason: "TOKEN_MISSING", message: expect.any(String) } },
      ]);
      const bad = await fetch(url, { headers: { authorization: "Bearer nope" } });
      expect([bad.status, await bad.json()]).toEqual([
        401,
        { error: { code: "Unauthenticated", reason: "TOKEN_INVALID", message: expect.any(String) } },
      ]);
    } finally {
      server.close();
      verifier.close();
    }
  });

  it("keeps positive answers for its cache TTL only, and reports an unreachable service as unavailable", async () => {
    const { tokens } = await login();
    const second = await startTestApp(backend); // a service the test can stop
    const other = await (async () => {
      const { code } = second.sandbox.issueCode({ appId: APP.appId });
      return (await second.connect.login({ appId: APP.appId, code })).tokens?.accessToken as string;
    })();
    const cached = createVerifier({
      address: `127.0.0.1:${second.app.grpcPort}`,
      cacheTtlMs: 1500, // outlasts stopping the service on a busy machine
      deadlineMs: 500,
    });
    try {
      await cached.verify(other);
      await second.stop();
      expect((await cached.verify(other)).appId).toBe(APP.appId); // from the cache
      await new Promise((r) => setTimeout(r, 1600));
      expect(await rejection(cached.verify(other), VerifyError)).toMatchObject({ kind: "unavailable" });
      expect(await rejection(cached.verify(tokens.accessToken), VerifyError)).toMatchObject({
        kind: "unavailable",
      });
    } finally {
      cached.close();
    }
  });
});
