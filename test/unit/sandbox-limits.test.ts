import type { IncomingMessage, ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSandboxServer } from "../../src/sandbox/sandbox-server.js";
import { isLoopbackAddress, loopbackOnly } from "../../src/transport/http/http-handler.js";
import { TEST_APPS } from "../helpers/test-app.js";

describe("the sandbox's limits", () => {
  let server: Awaited<ReturnType<typeof startSandboxServer>>;
  beforeAll(async () => {
    server = await startSandboxServer({ apps: TEST_APPS });
  });
  afterAll(() => server.close());

  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${server.baseUrl}${path}`, { method: "POST", body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it("listens on loopback by default", () => {
    expect(new URL(server.baseUrl).hostname).toBe("127.0.0.1");
  });

  it("takes a fault at most 100 times and a latency of at most 30 s", async () => {
    expect((await post("/faults", { fault: -1, times: 1_000_000 })).status).toBe(400);
    expect((await post("/faults", { fault: -1, times: 1.5 })).status).toBe(400);
    expect(await post("/faults", { fault: -1, times: 100 })).toEqual({ status: 200, body: { queued: 100 } });
    expect((await post("/latency", { ms: 3_600_000 })).status).toBe(400);
    expect((await post("/latency", { ms: -1 })).status).toBe(400);
    expect(await post("/latency", { ms: 30_000 })).toEqual({ status: 200, body: { ms: 30_000 } });
    server.sandbox.reset();
  });
});

describe("a route for loopback callers only (the embedded default's sandbox)", () => {
  it.each([
    ["127.0.0.1", true],
    ["127.8.9.10", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["10.0.0.5", false],
    ["192.168.1.2", false],
    ["::ffff:10.0.0.5", false],
    ["2001:db8::1", false],
    [undefined, false],
  ])("%s is loopback: %s", (address, loopback) => {
    expect(isLoopbackAddress(address)).toBe(loopback);
  });

  it("answers a loopback caller and passes over anyone else (answered 404)", async () => {
    const served: string[] = [];
    const route = loopbackOnly(async (_req, _res, path) => {
      served.push(path);
      return true;
    });
    const from = (remoteAddress: string) => ({ socket: { remoteAddress } }) as IncomingMessage;
    const res = {} as ServerResponse;
    expect(await route(from("127.0.0.1"), res, "/login")).toBe(true);
    expect(await route(from("203.0.113.7"), res, "/faults")).toBe(false);
    expect(served).toEqual(["/login"]);
  });
});
