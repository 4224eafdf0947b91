import { type ChildProcess, spawn } from "node:child_process";
import { connect, createServer } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { REAL_DATABASE_URL } from "../helpers/backends.js";
import { eventually } from "../helpers/eventually.js";
import { connectFailure } from "../helpers/failures.js";
import { metricValue, scrape } from "../helpers/metrics.js";
import { hasRedisServer } from "../helpers/redis-topologies.js";
import { createScratchDatabase } from "../helpers/scratch-database.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import { memoryLogger, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP_ID = TEST_APPS[0]?.appId as string;

async function loginFailure(t: TestApp): Promise<{ code: Code; reason?: string }> {
  const { code } = t.sandbox.issueCode({ appId: APP_ID });
  const err = await t.connect.login({ appId: APP_ID, code }).then(
    () => null,
    (e: unknown) => ConnectError.from(e),
  );
  if (!err) throw new Error("expected the login to fail");
  return { code: err.code, reason: err.findDetails(ErrorInfoSchema)[0]?.reason };
}

async function loginToken(t: TestApp): Promise<string> {
  const { code } = t.sandbox.issueCode({ appId: APP_ID });
  return (await t.connect.login({ appId: APP_ID, code })).tokens?.accessToken ?? "";
}

const servedAgain = (t: TestApp) =>
  eventually(async () => (await loginToken(t).catch(() => "")) !== "", "a login to succeed again");

/** Our own outages must look like outages (UNAVAILABLE), never like bad credentials. */
describe.runIf(REAL_DATABASE_URL)("a Postgres outage", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("real");
  });
  afterAll(() => t.stop());

  it("fails logins and refreshes with UNAVAILABLE (never as reuse) while tokens keep verifying", async () => {
    const { code } = t.sandbox.issueCode({ appId: APP_ID });
    const refreshToken = (await t.connect.login({ appId: APP_ID, code })).tokens?.refreshToken ?? "";
    const warm = await loginToken(t);
    const cold = await loginToken(t);
    await t.grpc.call("verifyToken", { accessToken: warm });

    const database = new URL(t.config.databaseUrl as string).pathname.slice(1);
    const admin = postgres(REAL_DATABASE_URL as string, { max: 1, onnotice: () => {} });
    await admin.unsafe(`drop database "${database}" with (force)`);
    await admin.end();

    expect(await loginFailure(t)).toEqual({ code: Code.Unavailable, reason: "STORAGE_UNAVAILABLE" });
    expect(await connectFailure(t.connect.refresh({ refreshToken }))).toMatchObject({
      code: Code.Unavailable,
      reason: "STORAGE_UNAVAILABLE",
    });
    expect((await t.grpc.call("verifyToken", { accessToken: warm })).claims?.appId).toBe(APP_ID);
    expect((await t.grpc.call("verifyToken", { accessToken: cold })).claims?.appId).toBe(APP_ID);
  });
});

/** Postgres taken away for a few seconds, then given back: the next call must not wait on a backoff. */
describe.runIf(REAL_DATABASE_URL)("Postgres coming back", () => {
  let t: TestApp;
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let database: Awaited<ReturnType<typeof createScratchDatabase>>;
  beforeAll(async () => {
    database = await createScratchDatabase(REAL_DATABASE_URL as string);
    const url = new URL(database.url);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.port = String(proxy.port);
    t = await startTestApp("embedded", { DATABASE_URL: url.toString() });
  });
  afterAll(async () => {
    await t.stop();
    proxy.close();
    await database.drop();
  });

  it("answers UNAVAILABLE while it is gone, and serves again within seconds of its return", async () => {
    await loginToken(t);
    await proxy.cut();
    // Several seconds of failed reconnects: postgres.js's own backoff would now be seconds long.
    for (let i = 0; i < 6; i++) {
      expect(await loginFailure(t)).toEqual({ code: Code.Unavailable, reason: "STORAGE_UNAVAILABLE" });
      await new Promise((resolve) => setTimeout(resolve, 700));
    }
    await proxy.restore();
    // Served again within seconds: the breaker lets a call try it every second, and the pool
    // reconnects within one (postgres.js's own backoff would by now be 15 s).
    await servedAgain(t);
  });

  it("answers calls that arrive together while it is gone with UNAVAILABLE at once, not at their deadline", async () => {
    await loginToken(t);
    await proxy.cut();
    const loginsTogether = (n: number) =>
      Promise.all(
        Array.from({ length: n }, () => {
          const { code } = t.sandbox.issueCode({ appId: APP_ID });
          return t.connect.login({ appId: APP_ID, code }, { timeoutMs: 5000 }).then(
            () => new ConnectError("the login succeeded", Code.Unknown),
            (e: unknown) => ConnectError.from(e),
          );
        }),
      );
    // The first calls find it gone (those already waiting for a connection in postgres.js wait
    // on: it hands each failed connection attempt one of them), and the breaker opens on them.
    await eventually(
      async () => (await loginsTogether(10)).every((f) => f.message.includes("postgres is not answering")),
      "the breaker to open",
    );
    const together = (await loginsTogether(40)).map((f) => ({
      code: f.code,
      reason: f.findDetails(ErrorInfoSchema)[0]?.reason,
    }));
    expect(together.filter((f) => f.code !== Code.Unavailable)).toEqual([]);
    expect(new Set(together.map((f) => f.reason))).toEqual(new Set(["STORAGE_UNAVAILABLE"]));
    // An operator sees it: not ready, the dependency down and its failures counted; still live.
    const readyz = await fetch(`${t.httpUrl}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.json()).toMatchObject({ checks: { postgres: false, serving: true } });
    expect((await fetch(`${t.httpUrl}/livez`)).status).toBe(200);
    const down = await scrape(`${t.httpUrl}/metrics`);
    expect(metricValue(down, "identity_dependency_up", { dependency: "postgres" })).toBe(0);
    expect(
      metricValue(down, "identity_dependency_errors_total", { dependency: "postgres", kind: "unavailable" }),
    ).toBeGreaterThan(0);
    expect(
      metricValue(down, "identity_rpc_errors_total", { method: "Login", reason: "STORAGE_UNAVAILABLE" }),
    ).toBeGreaterThanOrEqual(40);
    await proxy.restore();
    await servedAgain(t);
    expect((await fetch(`${t.httpUrl}/readyz`)).status).toBe(200);
    // The operator reads both turns in the log.
    const said = t.log.lines.map((l) => `${l.level} ${l.message}`);
    expect(said).toContain("warn postgres not answering: calls fail at once, one a second tries it again");
    expect(said).toContain("info postgres answering again");
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    {
      stdio: "ignore",
    },
  );
  for (let i = 0; i < 50; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (up) return child;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("redis-server did not start");
}

describe.runIf(hasRedisServer)("a Redis outage", () => {
  let t: TestApp;
  let redis: ChildProcess;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    redis = await startRedis(port);
    t = await startTestApp("embedded", { REDIS_URL: `redis://127.0.0.1:${port}` });
  });
  afterAll(async () => {
    await t.stop();
    redis.kill("SIGKILL");
  });

  it("fails logins with UNAVAILABLE, keeps verifying, and recovers when Redis is back", async () => {
    const token = await loginToken(t);
    redis.kill("SIGKILL");
    await new Promise((resolve) => redis.once("exit", resolve));

    expect(await loginFailure(t)).toEqual({ code: Code.Unavailable, reason: "STORAGE_UNAVAILABLE" });
    expect((await t.grpc.call("verifyToken", { accessToken: token })).claims?.appId).toBe(APP_ID);

    redis = await startRedis(port);
    let recovered = false;
    for (let i = 0; i < 50 && !recovered; i++) {
      recovered = await loginToken(t).then(
        () => true,
        () => false,
      );
      if (!recovered) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(recovered).toBe(true);
  });
});

describe.runIf(hasRedisServer)("a dependency that is down at start", () => {
  it("is waited for, named in the log without its password, and the service starts once it answers", async () => {
    const port = await freePort();
    let started: TestApp | undefined;
    const log = memoryLogger();
    const starting = startTestApp(
      "embedded",
      { REDIS_URL: `redis://:hunter2@127.0.0.1:${port}`, STARTUP_TIMEOUT: "30s" },
      { log },
    ).then((t) => {
      started = t;
      return t;
    });
    // Until a try has failed (how long the embedded database takes to open first varies).
    for (let i = 0; i < 200 && !log.lines.some((l) => l.message.includes("not answering")); i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(started).toBeUndefined();
    const redis = await startRedis(port);
    const t = await starting;
    try {
      expect(await loginToken(t)).toBeTruthy();
      const waits = t.log.lines.filter((l) => l.message.includes("not answering"));
      expect(waits.length).toBeGreaterThan(0);
      expect(waits[0]?.message).toBe(`Redis at redis://127.0.0.1:${port} not answering; trying again`);
      expect(JSON.stringify(t.log.lines)).not.toContain("hunter2");
    } finally {
      await t.stop();
      redis.kill("SIGKILL");
    }
  });

  it("gives up after STARTUP_TIMEOUT with an error naming it", async () => {
    const port = await freePort();
    await expect(
      startTestApp("embedded", { REDIS_URL: `redis://127.0.0.1:${port}`, STARTUP_TIMEOUT: "1s" }),
    ).rejects.toThrow(`Redis at redis://127.0.0.1:${port} not answering after`);
  });
});
