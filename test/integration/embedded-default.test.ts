import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp } from "../../src/app/start-app.js";
import { parseConfig } from "../../src/config.js";
import { IdentityService } from "../../src/gen/identity/v1/identity_pb.js";
import { openPglite } from "../../src/store/pg/database.js";
import { createGrpcClient, grpcReason } from "../helpers/grpc-client.js";
import { memoryLogger } from "../helpers/test-app.js";

/**
 * What `npm start` runs with no configuration: PGlite in the data folder, the in-process store,
 * the built-in WeChat sandbox on the HTTP port. Only ports and the data folder are chosen here.
 */
describe("the embedded default", () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "identity-embedded-"));
  });

  const start = async () => {
    const log = memoryLogger();
    const app = await startApp(
      parseConfig({ HTTP_PORT: "0", GRPC_PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir }),
      {
        log,
      },
    );
    const base = `http://127.0.0.1:${app.httpPort}`;
    return {
      app,
      log,
      base,
      connect: createClient(IdentityService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" })),
      grpc: createGrpcClient(`127.0.0.1:${app.grpcPort}`),
    };
  };

  async function sandboxCode(base: string, openid: string): Promise<string> {
    const response = await fetch(`${base}/sandbox/login`, {
      method: "POST",
      body: JSON.stringify({ openid }),
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { code: string }).code;
  }

  let firstToken = "";
  let running: Awaited<ReturnType<typeof start>> | undefined;
  const stop = async () => {
    running?.grpc.close();
    await running?.app.stop();
    running = undefined;
  };
  afterAll(async () => {
    await stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("logs a sandbox user in with two HTTP calls and says what it runs on", async () => {
    running = await start();
    const code = await sandboxCode(running.base, "o-embedded");
    const login = await running.connect.login({ code }); // no app_id: the one sandbox app
    expect(login.newUser).toBe(true);
    firstToken = login.tokens?.accessToken ?? "";
    expect((await running.grpc.call("verifyToken", { accessToken: firstToken })).claims?.openid).toBe(
      "o-embedded",
    );

    const started = running.log.lines.find((l) => l.message === "identity service started");
    expect(started?.fields).toMatchObject({ store: "in-process (single instance only)" });
    expect(String(started?.fields?.database)).toContain("embedded PGlite");
    expect(String(started?.fields?.wechat)).toContain("built-in sandbox");
    const kek = await readFile(join(dataDir, "key-encryption-key"), "utf8");
    expect(Buffer.from(kek, "base64")).toHaveLength(32);
    await stop();
  });

  it("keeps users, sessions and signing keys across a restart", async () => {
    running = await start();
    expect((await running.grpc.call("verifyToken", { accessToken: firstToken })).claims?.openid).toBe(
      "o-embedded",
    );
    const again = await running.connect.login({ code: await sandboxCode(running.base, "o-embedded") });
    expect(again.newUser).toBe(false);
    await stop();
  });

  it("loads revoked sessions at start, so their tokens stop verifying", async () => {
    const handle = await openPglite(join(dataDir, "pglite"));
    await handle.db.execute(sql`update sessions set revoked_at = now(), revoked_reason = 'test'`);
    await handle.close();
    running = await start();
    const failure = await running.grpc
      .call("verifyToken", { accessToken: firstToken })
      .catch((e: unknown) => e);
    expect((failure as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
    expect(grpcReason(failure)).toBe("TOKEN_REVOKED");
    await stop();
  });

  it("refuses to start with a key-encryption key other than the one that sealed its keys", async () => {
    await expect(
      startApp(
        parseConfig({
          HTTP_PORT: "0",
          GRPC_PORT: "0",
          HOST: "127.0.0.1",
          DATA_DIR: dataDir,
          KEY_ENCRYPTION_KEY: Buffer.alloc(32, 9).toString("base64"),
        }),
        { log: memoryLogger() },
      ),
    ).rejects.toThrow(/KEY_ENCRYPTION_KEY/);
  });
});
