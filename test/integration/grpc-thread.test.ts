import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:net";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp } from "../../src/app/start-app.js";
import { parseConfig } from "../../src/config.js";
import { sharedClock } from "../../src/domain/ports.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { IdentityService, LoginRequestSchema } from "../../src/gen/identity/v1/identity_pb.js";
import type { ReplicaFeed } from "../../src/identity/verify-token-replica.js";
import type { PublishedKey } from "../../src/signing-keys/key-schedule.js";
import { startGrpcThread } from "../../src/transport/grpc/thread/grpc-thread.js";
import { mount } from "../../src/transport/mounted-service.js";
import { errorData, errorFromData } from "../../src/wire/errors.js";
import { grpcMethodDefinition } from "../../src/wire/grpc-method.js";
import { grpcFailure, rejection } from "../helpers/failures.js";
import { createGrpcClient } from "../helpers/grpc-client.js";
import { BACKENDS, memoryLogger, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

/**
 * The gRPC server runs on its own thread with its own copy of what VerifyToken needs; these are
 * the promises that split must keep (the other suites run every gRPC call through it too).
 */
describe.each(BACKENDS)("the gRPC thread (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend);
  });
  afterAll(() => t.stop());

  const login = async () => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    return (await t.connect.login({ appId: APP.appId, code })).tokens?.accessToken ?? "";
  };

  it("refuses a token at once after its session ended on the main thread, in every one of 20 rounds", async () => {
    const tokens = await Promise.all(Array.from({ length: 20 }, login));
    await Promise.all(tokens.map((accessToken) => t.grpc.call("verifyToken", { accessToken })));
    const refused = await Promise.all(
      tokens.map(async (accessToken) => {
        await t.connect.logout({ accessToken });
        return grpcFailure(t.grpc.call("verifyToken", { accessToken }));
      }),
    );
    expect(refused).toEqual(
      tokens.map(() => ({ code: grpc.status.UNAUTHENTICATED, reason: "TOKEN_REVOKED" })),
    );
  });

  it("hands other methods to the main thread and brings back their answers and errors", async () => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    const overGrpc = await t.grpc.call("login", { appId: APP.appId, code });
    expect(
      (await t.grpc.call("verifyToken", { accessToken: overGrpc.tokens?.accessToken ?? "" })).claims?.openid,
    ).toBe(overGrpc.user?.openid);
    expect(await grpcFailure(t.grpc.call("login", { appId: APP.appId, code: "never-issued" }))).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      reason: "INVALID_CODE",
    });
  });
});

describe("errors crossing between the threads", () => {
  it("keep their code, message and details", () => {
    const original = new ConnectError(
      "the session of this access token has ended",
      Code.Unauthenticated,
      undefined,
      [
        {
          desc: ErrorInfoSchema,
          value: create(ErrorInfoSchema, { reason: "TOKEN_REVOKED", domain: "identity" }),
        },
      ],
    );
    const crossed = errorFromData(structuredClone(errorData(original)));
    expect(crossed.code).toBe(Code.Unauthenticated);
    expect(crossed.rawMessage).toBe("the session of this access token has ended");
    expect(crossed.findDetails(ErrorInfoSchema)).toMatchObject([
      { reason: "TOKEN_REVOKED", domain: "identity" },
    ]);
  });

  it("turn anything but a ConnectError into INTERNAL without its text", () => {
    const crossed = errorFromData(errorData(new Error("password=hunter2")));
    expect(crossed.code).toBe(Code.Internal);
    expect(crossed.rawMessage).toBe("internal error");
  });
});

describe("a gRPC port already taken", () => {
  let blocker: ReturnType<typeof createServer>;
  let port: number;
  beforeAll(async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    port = (blocker.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

  it("stops the start with the reason", async () => {
    const config = parseConfig({
      GRPC_PORT: String(port),
      HTTP_PORT: "0",
      HOST: "127.0.0.1",
      DATA_DIR: "memory://",
      WECHAT_APPS: JSON.stringify(TEST_APPS),
    });
    const err = await rejection(startApp(config, { log: memoryLogger() }), Error);
    expect(err.message).toMatch(/EADDRINUSE|address/i);
  });
});

/**
 * The gRPC thread on its own: a replica starting from one public key that signs from a minute
 * ago, the given ServiceImpl methods behind it, and the test's own feed and failure hook if any.
 */
function startBareThread(
  overrides: Partial<Parameters<typeof startGrpcThread>[0]> = {},
  watch: ReplicaFeed["watch"] = () => () => {},
) {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const key: PublishedKey = {
    kid: "k1",
    alg: "ES256",
    publicJwk: publicKey.export({ format: "jwk" }) as Record<string, string>,
    activatesAt: new Date(Date.now() - 60_000),
    retiresAt: null,
  };
  const thread = startGrpcThread({
    host: "127.0.0.1",
    port: 0,
    maxReceiveBytes: 16 * 1024,
    services: [mount(IdentityService, {})],
    log: memoryLogger(),
    clock: sharedClock(),
    tokenSettings: { issuer: "i", audience: "a", accessTokenTtlMs: 60_000, leewayMs: 0 },
    cacheBytes: 64 * 1024,
    feed: { snapshot: () => [{ keys: [key] }, { revoked: [] }], watch },
    onFailure: () => {},
    ...overrides,
  });
  return { key, thread };
}

describe("a gRPC thread that dies", () => {
  it("is reported, and stopping it afterwards returns at once", async () => {
    let pushKeys: (keys: readonly PublishedKey[]) => void = () => {};
    let reportFailure: (err: Error) => void = () => {};
    const failed = new Promise<Error>((resolve) => {
      reportFailure = resolve;
    });
    const { key, thread: starting } = startBareThread({ onFailure: reportFailure }, (send) => {
      pushKeys = (keys) => send({ keys });
      return () => {};
    });
    const thread = await starting;
    // Keys none of which can sign now: the thread's next take of its updates throws, uncaught.
    pushKeys([{ ...key, activatesAt: new Date(Date.now() + 3_600_000) }]);
    expect((await failed).message).toMatch(/no signing key is active/);
    await thread.stop(1000);
  });
});

describe("a call the gRPC thread hands to the main thread", () => {
  it("carries its deadline, and its cancellation reaches the handler", async () => {
    let started: (context: HandlerContext) => void = () => {};
    const handlerStarted = new Promise<HandlerContext>((resolve) => {
      started = resolve;
    });
    const thread = await startBareThread({
      services: [
        mount(IdentityService, {
          // Waits until its call is cancelled, as a handler waiting on a dependency would.
          login: (_request, context) =>
            new Promise((_resolve, reject) => {
              started(context);
              context.signal.addEventListener("abort", () => reject(context.signal.reason), { once: true });
            }),
        }),
      ],
    }).thread;
    const client = createGrpcClient(`127.0.0.1:${thread.port}`);
    try {
      const login = grpcMethodDefinition(IdentityService, IdentityService.method.login);
      let settle: (err: grpc.ServiceError | null) => void = () => {};
      const settled = new Promise<grpc.ServiceError | null>((resolve) => {
        settle = resolve;
      });
      const call = client.raw.makeUnaryRequest(
        login.path,
        login.requestSerialize,
        login.responseDeserialize,
        create(LoginRequestSchema, { code: "c" }),
        new grpc.Metadata(),
        { deadline: Date.now() + 8000 },
        (err) => settle(err),
      );
      const context = await handlerStarted;
      const left = context.timeoutMs() as number;
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThanOrEqual(8000);
      expect(context.signal.aborted).toBe(false);

      call.cancel();
      expect((await settled)?.code).toBe(grpc.status.CANCELLED);
      await new Promise<void>((resolve) =>
        context.signal.aborted ? resolve() : context.signal.addEventListener("abort", () => resolve()),
      );
      expect(context.signal.aborted).toBe(true);
    } finally {
      client.close();
      await thread.stop(1000);
    }
  });
});
