import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus } from "../../src/gen/grpc/health/v1/health_pb.js";
import { grpcHealth } from "../helpers/grpc-client.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });

/** What SIGTERM runs (RunningApp.stop): warn the balancers, keep serving, finish what is in flight. */
describe.each(BACKENDS)("graceful shutdown (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, {
      SHUTDOWN_DELAY: "1s",
      SHUTDOWN_TIMEOUT: "10s",
      WECHAT_TIMEOUT_MS: "5000",
    });
  });
  afterAll(() => t.stop());

  it("turns health NOT_SERVING at once, serves through the delay, finishes Logins in flight, then closes", async () => {
    const { code: warm } = t.sandbox.issueCode({ appId: APP.appId });
    const accessToken = (await t.connect.login({ appId: APP.appId, code: warm })).tokens?.accessToken ?? "";
    const grpcAddress = `127.0.0.1:${t.app.grpcPort}`;
    const { httpPort, grpcPort } = t.app;

    // Logins in flight on both ports, each waiting 2.5 s on WeChat: past the 1 s delay, so they
    // are still running when the ports stop accepting.
    t.sandbox.setLatency(2500);
    const codes = [
      t.sandbox.issueCode({ appId: APP.appId }).code,
      t.sandbox.issueCode({ appId: APP.appId }).code,
    ];
    const overConnect = t.connect.login({ appId: APP.appId, code: codes[0] as string });
    const overGrpc = t.grpc.call("login", { appId: APP.appId, code: codes[1] as string });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const stopping = t.app.stop();

    // Not ready (balancers take it out), still live (nothing should restart it).
    const readyz = await fetch(`${t.httpUrl}/readyz`);
    expect(readyz.status).toBe(503);
    expect(((await readyz.json()) as { checks: Record<string, boolean> }).checks.serving).toBe(false);
    expect((await fetch(`${t.httpUrl}/healthz`)).status).toBe(503);
    expect((await fetch(`${t.httpUrl}/livez`)).status).toBe(200);
    expect(await grpcHealth(grpcAddress)).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    // Still served while balancers take the instance out.
    expect((await t.connect.verifyToken({ accessToken })).claims?.appId).toBe(APP.appId);
    expect((await t.grpc.call("verifyToken", { accessToken })).claims?.appId).toBe(APP.appId);

    expect((await overConnect).tokens?.accessToken).toBeTruthy();
    expect((await overGrpc).tokens?.accessToken).toBeTruthy();
    await stopping;
    expect(await refused(httpPort)).toBe(true);
    expect(await refused(grpcPort)).toBe(true);
    t.sandbox.setLatency(0);
  });
});
