import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { metricValue, parseMetrics, scrape } from "../helpers/metrics.js";
import { BACKENDS, memoryLogger, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
const BFF_KEY = "bff-key-0123456789abcdef";
const CALLERS = JSON.stringify([{ name: "bff", key: BFF_KEY, methods: ["*"] }]);
const asBff = { headers: { authorization: `Bearer ${BFF_KEY}` } };
const bffMetadata = { authorization: `Bearer ${BFF_KEY}` };

/** What an operator scrapes and reads: metrics of both ports and threads, probes, log lines. */
describe.each(BACKENDS)("metrics, probes and call logs (%s backends)", (backend) => {
  let t: TestApp;
  const log = memoryLogger({ debug: true });
  beforeAll(async () => {
    t = await startTestApp(backend, { CALLERS, LOG_LEVEL: "debug" }, { log });
  });
  afterAll(() => t.stop());

  const login = async () => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    return t.connect.login({ appId: APP.appId, code }, asBff);
  };

  it("counts calls by method and protocol on both ports, the gRPC thread's VerifyToken included", async () => {
    const before = await scrape(`${t.httpUrl}/metrics`);
    const { tokens, user } = await login();
    const accessToken = tokens?.accessToken as string;
    await t.grpc.call("verifyToken", { accessToken }, undefined, bffMetadata);
    await t.grpc.call("verifyToken", { accessToken }, undefined, bffMetadata);
    expect(
      await grpcFailure(t.grpc.call("verifyToken", { accessToken: "not-a-token" }, undefined, bffMetadata)),
    ).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    // Handed from the gRPC thread to the main thread: counted once, as gRPC.
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    await t.grpc.call("login", { appId: APP.appId, code }, undefined, bffMetadata);

    const after = await scrape(`${t.httpUrl}/metrics`);
    const grew = (name: string, labels: Record<string, string>) =>
      metricValue(after, name, labels) - metricValue(before, name, labels);
    expect(grew("identity_rpc_duration_seconds_count", { method: "Login", protocol: "connect" })).toBe(1);
    expect(grew("identity_rpc_duration_seconds_count", { method: "Login", protocol: "grpc" })).toBe(1);
    expect(grew("identity_rpc_duration_seconds_count", { method: "VerifyToken", protocol: "grpc" })).toBe(3);
    expect(
      grew("identity_rpc_errors_total", {
        method: "VerifyToken",
        protocol: "grpc",
        code: "UNAUTHENTICATED",
        reason: "TOKEN_INVALID",
      }),
    ).toBe(1);
    // The thread's cache: a miss, then a hit.
    expect(grew("identity_verify_cache_misses_total", { thread: "grpc" })).toBeGreaterThanOrEqual(1);
    expect(grew("identity_verify_cache_hits_total", { thread: "grpc" })).toBeGreaterThanOrEqual(1);
    expect(metricValue(after, "identity_verify_cache_entries", { thread: "grpc" })).toBeGreaterThan(0);
    expect(metricValue(after, "identity_grpc_thread_up")).toBe(1);
    expect(grew("identity_wechat_requests_total", { endpoint: "/sns/jscode2session", errcode: "0" })).toBe(2);
    expect(metricValue(after, "identity_dependency_call_duration_seconds_count")).toBeGreaterThan(0);
    expect(metricValue(after, "nodejs_eventloop_lag_p99_seconds")).toBeGreaterThanOrEqual(0);

    // Bounded labels: nothing of a user or a token.
    const text = await (await fetch(`${t.httpUrl}/metrics`)).text();
    expect(text).not.toContain(accessToken.slice(-20));
    expect(text).not.toContain(user?.id as string);
    expect(text).not.toContain(user?.openid as string);
  });

  it("counts refusals: callers without a key, WeChat's errcodes, rate limits", async () => {
    const before = await scrape(`${t.httpUrl}/metrics`);
    await connectFailure(t.connect.login({ appId: APP.appId, code: "x" }));
    await grpcFailure(t.grpc.call("verifyToken", { accessToken: "x" }));
    expect(
      await connectFailure(t.connect.login({ appId: APP.appId, code: "never-issued" }, asBff)),
    ).toMatchObject({ code: Code.Unauthenticated, reason: "INVALID_CODE" });
    const after = await scrape(`${t.httpUrl}/metrics`);
    const grew = (name: string, labels: Record<string, string>) =>
      metricValue(after, name, labels) - metricValue(before, name, labels);
    expect(grew("identity_caller_auth_failures_total", { port: "http", caller: "unknown" })).toBe(1);
    expect(grew("identity_caller_auth_failures_total", { port: "grpc", caller: "unknown" })).toBe(1);
    expect(
      grew("identity_wechat_requests_total", { endpoint: "/sns/jscode2session", errcode: "40029" }),
    ).toBe(1);
  });

  it("logs a failure of ours once, with the caller's request id, and every call at debug", async () => {
    t.sandbox.failNext("http500");
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    await connectFailure(
      t.connect.login(
        { appId: APP.appId, code },
        { headers: { ...asBff.headers, "x-request-id": "req-connect-1" } },
      ),
    );
    t.sandbox.failNext("http500");
    const second = t.sandbox.issueCode({ appId: APP.appId }).code;
    await grpcFailure(
      t.grpc.call("login", { appId: APP.appId, code: second }, undefined, {
        ...bffMetadata,
        "x-request-id": "req-grpc-1",
      }),
    );
    for (const [requestId, protocol] of [
      ["req-connect-1", "connect"],
      ["req-grpc-1", "grpc"],
    ]) {
      expect(log.lines).toContainEqual({
        level: "warn",
        message: "dependency failure",
        fields: expect.objectContaining({
          requestId,
          rpc: "Login",
          protocol,
          caller: "bff",
          status: "UNAVAILABLE",
          reason: "WECHAT_UNAVAILABLE",
          durationMs: expect.any(Number),
        }),
      });
    }
    await login();
    expect(log.lines.at(-1)).toMatchObject({
      level: "debug",
      message: "call",
      fields: { rpc: "Login", status: "OK", requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) },
    });
  });

  it("answers /livez and /readyz with their checks", async () => {
    const live = await fetch(`${t.httpUrl}/livez`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: "SERVING", checks: { grpcThread: true } });
    const ready = await fetch(`${t.httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      status: "SERVING",
      checks: {
        serving: true,
        grpcThread: true,
        postgres: true,
        signingKeys: true,
        ...(backend === "real" ? { redis: true } : {}),
      },
    });
  });
});

describe("METRICS_PORT", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("embedded", { METRICS_PORT: "0" });
  });
  afterAll(() => t.stop());

  it("serves /metrics on a port of its own, and not on the HTTP port", async () => {
    const port = t.app.metricsPort as number;
    expect(port).toBeGreaterThan(0);
    const samples = parseMetrics(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    expect(metricValue(samples, "identity_grpc_thread_up")).toBe(1);
    expect((await fetch(`${t.httpUrl}/metrics`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
  });
});
