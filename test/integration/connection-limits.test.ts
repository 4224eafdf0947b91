import * as http2 from "node:http2";
import { connect, type Socket } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityService } from "../../src/gen/identity/v1/identity_pb.js";
import { eventually } from "../helpers/eventually.js";
import { startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
/** The attacker's address: another address of the loopback range, so the service sees two clients. */
const FLOODER = "127.0.0.5";

/** Opens `count` connections from `localAddress` that never send a byte; resolves once each connected or was refused. */
async function silentConnections(port: number, count: number, localAddress: string) {
  const sockets: Socket[] = [];
  let closed = 0;
  await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<void>((resolve) => {
          const socket = connect({ host: "127.0.0.1", port, localAddress });
          sockets.push(socket);
          socket.once("connect", () => resolve());
          socket.once("error", () => resolve());
          socket.once("close", () => {
            closed++;
            resolve();
          });
        }),
    ),
  );
  return {
    get closed() {
      return closed;
    },
    destroy: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

/** One client's silent sockets must not lock anyone else out of either port, and are closed. */
describe("connection limits (embedded backends)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("embedded", {
      MAX_CONNECTIONS: "400",
      MAX_CONNECTIONS_PER_ADDRESS: "50",
      CONNECTION_FIRST_REQUEST_TIMEOUT: "1s",
    });
  });
  afterAll(() => t.stop());

  it("caps one address's silent connections on both ports, closes them, and keeps serving everyone else", async () => {
    const http = await silentConnections(t.app.httpPort, 1000, FLOODER);
    const grpcFlood = await silentConnections(t.app.grpcPort, 1000, FLOODER);
    try {
      // Past the cap of 50 per address, connections are closed at once.
      await eventually(() => http.closed >= 950, "the HTTP port to refuse past its cap");
      await eventually(() => grpcFlood.closed >= 950, "the gRPC port to refuse past its cap");

      // Everyone else: health, a Login over Connect, a VerifyToken over gRPC.
      expect((await fetch(`${t.httpUrl}/healthz`)).status).toBe(200);
      const { code } = t.sandbox.issueCode({ appId: APP.appId });
      const login = await t.connect.login({ appId: APP.appId, code });
      const verified = await t.grpc.call("verifyToken", { accessToken: login.tokens?.accessToken ?? "" });
      expect(verified.claims?.appId).toBe(APP.appId);

      // The silent ones that were let in are closed once they have completed no request in 1 s.
      await eventually(() => http.closed === 1000, "the silent HTTP connections to be closed");
      await eventually(() => grpcFlood.closed === 1000, "the silent gRPC connections to be closed");
      // A client that made a request keeps its connection.
      expect(
        (await t.grpc.call("verifyToken", { accessToken: login.tokens?.accessToken ?? "" })).claims,
      ).toBeTruthy();
    } finally {
      http.destroy();
      grpcFlood.destroy();
    }
  });

  it("keeps a connection that has completed a request, over HTTP/1.1, h2c and gRPC", async () => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    const accessToken = (await t.connect.login({ appId: APP.appId, code })).tokens?.accessToken ?? "";
    const h2c = createClient(
      IdentityService,
      createConnectTransport({ baseUrl: t.httpUrl, httpVersion: "2" }),
    );
    await h2c.verifyToken({ accessToken });
    await t.connect.verifyToken({ accessToken });
    await t.grpc.call("verifyToken", { accessToken });
    // Past the first-request timeout (1 s here), the same connections still answer.
    const session = http2.connect(t.httpUrl);
    const healthz = () =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request({ ":path": "/healthz" });
        stream.once("response", (headers) => resolve(Number(headers[":status"])));
        stream.once("error", reject);
        stream.resume();
      });
    expect(await healthz()).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await healthz()).toBe(200);
    session.close();
    expect((await h2c.verifyToken({ accessToken })).claims?.appId).toBe(APP.appId);
    expect((await t.connect.verifyToken({ accessToken })).claims?.appId).toBe(APP.appId);
    expect((await t.grpc.call("verifyToken", { accessToken })).claims?.appId).toBe(APP.appId);
  });
});
