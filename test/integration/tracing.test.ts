import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectFailure } from "../helpers/failures.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const traceparent = (parent: string) => `00-${TRACE_ID}-${parent}-01`;

const spanId = (s: ReadableSpan) => s.spanContext().spanId;
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

/** Spans in memory: the RPC's server span, its children, and the caller's trace context. */
describe.each(BACKENDS)("traces (%s backends)", (backend) => {
  let t: TestApp;
  const exporter = new InMemorySpanExporter();
  beforeAll(async () => {
    t = await startTestApp(backend, {}, { spanExporter: exporter });
  });
  afterAll(() => t.stop());

  const spansOfTrace = () => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === TRACE_ID);

  it("makes a server span per RPC under the caller's traceparent, with WeChat and storage spans as its children", async () => {
    exporter.reset();
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    await t.connect.login(
      { appId: APP.appId, code },
      { headers: { traceparent: traceparent("00f067aa0ba902b7") } },
    );
    const spans = spansOfTrace();
    const server = spans.find((s) => s.name === "identity.v1.IdentityService/Login");
    expect(server).toBeDefined();
    expect(server?.kind).toBe(SpanKind.SERVER);
    expect(parentOf(server as ReadableSpan)).toBe("00f067aa0ba902b7");
    expect(server?.attributes).toMatchObject({ "rpc.method": "Login", "rpc.protocol": "connect" });
    const children = spans.filter((s) => parentOf(s) === spanId(server as ReadableSpan));
    const names = children.map((s) => s.name);
    expect(names).toContain("wechat /sns/jscode2session");
    expect(names.some((n) => n.startsWith("postgres "))).toBe(true);
    const wechat = children.find((s) => s.name === "wechat /sns/jscode2session");
    expect(wechat?.kind).toBe(SpanKind.CLIENT);
    expect(wechat?.attributes).toMatchObject({
      "wechat.endpoint": "/sns/jscode2session",
      "wechat.errcode": "0",
    });
    // The URL (with the app secret and the code) is in no span.
    expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain(APP.appSecret);
  });

  it("carries the trace context of a gRPC call the gRPC thread hands to the main thread", async () => {
    exporter.reset();
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    await t.grpc.call("login", { appId: APP.appId, code }, undefined, {
      traceparent: traceparent("1111111111111111"),
    });
    const server = spansOfTrace().find((s) => s.name === "identity.v1.IdentityService/Login");
    expect(server?.attributes).toMatchObject({ "rpc.system": "grpc" });
    expect(parentOf(server as ReadableSpan)).toBe("1111111111111111");
  });

  it("marks a failed call's span with its status and reason", async () => {
    exporter.reset();
    await connectFailure(
      t.connect.verifyToken(
        { accessToken: "not-a-token" },
        { headers: { traceparent: traceparent("2222222222222222") } },
      ),
    );
    const server = spansOfTrace().find((s) => s.name === "identity.v1.IdentityService/VerifyToken");
    expect(server?.status.code).toBe(SpanStatusCode.ERROR);
    expect(server?.attributes).toMatchObject({
      "identity.reason": "TOKEN_INVALID",
      "rpc.grpc.status_code": 16,
    });
  });
});

/** OTEL_TRACES_EXPORTER=otlp: the spans of both threads reach a collector over OTLP/HTTP. */
describe("traces exported over OTLP", () => {
  let collector: Server;
  const received: string[] = [];
  let t: TestApp;
  beforeAll(async () => {
    collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        if (req.url === "/v1/traces") received.push(Buffer.concat(chunks).toString("utf8"));
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
    t = await startTestApp("embedded", {
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
      OTEL_SERVICE_NAME: "identity-under-test",
    });
  });
  afterAll(() => new Promise<void>((resolve) => collector.close(() => resolve())));

  it("exports the gRPC thread's VerifyToken spans and the main thread's Login spans, flushed at stop", async () => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    const login = await t.connect.login({ appId: APP.appId, code });
    await t.grpc.call("verifyToken", { accessToken: login.tokens?.accessToken as string }, undefined, {
      traceparent: traceparent("3333333333333333"),
    });
    await t.stop();
    const all = received.join("\n");
    expect(all).toContain("identity-under-test");
    expect(all).toContain("identity.v1.IdentityService/Login");
    expect(all).toContain("identity.v1.IdentityService/VerifyToken");
    expect(all.toLowerCase()).toContain(TRACE_ID);
  });
});
