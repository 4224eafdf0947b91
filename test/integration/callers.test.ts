import { createHash } from "node:crypto";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdentityClient, createVerifier, VerifyError } from "../../src/client/index.js";
import { HealthCheckResponse_ServingStatus } from "../../src/gen/grpc/health/v1/health_pb.js";
import { connectFailure, grpcFailure, rejection } from "../helpers/failures.js";
import { grpcHealth } from "../helpers/grpc-client.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
const BFF_KEY = "bff-key-0123456789abcdef";
const ORDERS_KEY = "orders-key-0123456789abcdef";
const CALLERS = JSON.stringify([
  { name: "bff", key: BFF_KEY, methods: ["*"] },
  // Only the SHA-256 of this one is configured.
  {
    name: "orders",
    keySha256: createHash("sha256").update(ORDERS_KEY).digest("hex"),
    methods: ["VerifyToken"],
  },
]);

/** With CALLERS set, only a known caller may call, and only the methods it was given. */
describe.each(BACKENDS)("callers (%s backends)", (backend) => {
  let t: TestApp;
  let bff: ReturnType<typeof createIdentityClient>;
  let accessToken: string;
  beforeAll(async () => {
    t = await startTestApp(backend, { CALLERS });
    bff = createIdentityClient({ baseUrl: t.httpUrl, callerKey: BFF_KEY });
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    accessToken = (await bff.login({ appId: APP.appId, code })).tokens?.accessToken as string;
  });
  afterAll(() => t.stop());

  it("refuses a call with no key or a wrong one as UNAUTHENTICATED, on both ports", async () => {
    expect(await connectFailure(t.connect.verifyToken({ accessToken }))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "CALLER_UNAUTHENTICATED",
    });
    const wrong = createIdentityClient({ baseUrl: t.httpUrl, callerKey: "not-a-key-of-anyone" });
    expect(await connectFailure(wrong.verifyToken({ accessToken }))).toMatchObject({
      reason: "CALLER_UNAUTHENTICATED",
    });
    expect(await grpcFailure(t.grpc.call("verifyToken", { accessToken }))).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      reason: "CALLER_UNAUTHENTICATED",
    });
  });

  it("lets a caller call what it was given, and refuses the rest as PERMISSION_DENIED", async () => {
    const verifier = createVerifier({ address: `127.0.0.1:${t.app.grpcPort}`, callerKey: ORDERS_KEY });
    try {
      expect((await verifier.verify(accessToken)).appId).toBe(APP.appId);
    } finally {
      verifier.close();
    }
    const orders = createIdentityClient({ baseUrl: t.httpUrl, callerKey: ORDERS_KEY });
    expect((await orders.verifyToken({ accessToken })).claims?.appId).toBe(APP.appId);
    // The token it holds does not let it end the user's sessions or read their data.
    for (const call of [
      orders.logout({ accessToken, allSessions: true }),
      orders.decryptUserData({ accessToken, encryptedData: "x", iv: "y" }),
      orders.getPhoneNumber({ accessToken, phoneCode: "c" }),
    ]) {
      expect(await connectFailure(call)).toMatchObject({
        code: Code.PermissionDenied,
        reason: "CALLER_NOT_ALLOWED",
      });
    }
    const overGrpc = createVerifier({
      address: `127.0.0.1:${t.app.grpcPort}`,
      callerKey: "nobody-0123456789",
    });
    try {
      const refused = await rejection(overGrpc.verify(accessToken), VerifyError);
      expect(refused.reason).toBe("CALLER_UNAUTHENTICATED");
    } finally {
      overGrpc.close();
    }
  });

  it("keeps health, JWKS and reflection open", async () => {
    expect((await fetch(`${t.httpUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${t.httpUrl}/.well-known/jwks.json`)).status).toBe(200);
    expect(await grpcHealth(`127.0.0.1:${t.app.grpcPort}`)).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it("names the caller in the logs of what failed", async () => {
    t.sandbox.failNext("http500");
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    await connectFailure(bff.login({ appId: APP.appId, code }));
    expect(t.log.lines).toContainEqual(
      expect.objectContaining({
        message: "dependency failure",
        fields: expect.objectContaining({ caller: "bff" }),
      }),
    );
  });
});
