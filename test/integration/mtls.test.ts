import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdentityClient, createVerifier, VerifyError } from "../../src/client/index.js";
import { HealthCheckResponse_ServingStatus } from "../../src/gen/grpc/health/v1/health_pb.js";
import { connectFailure, rejection } from "../helpers/failures.js";
import { grpcHealth } from "../helpers/grpc-client.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
const FIXTURES = join(import.meta.dirname, "..", "fixtures", "tls");
const pem = (name: string) => readFileSync(join(FIXTURES, name), "utf8");
const CA = pem("ca.pem");
/** A client certificate and key as the clients take them. */
const identity = (name: string) => ({ cert: pem(`${name}.pem`), key: pem(`${name}.key`) });
const BFF_KEY = "bff-key-0123456789abcdef";
const CALLERS = JSON.stringify([
  // Known by their certificates (subject CN) only.
  { name: "orders", methods: ["VerifyToken"] },
  { name: "billing", methods: ["*"] },
  // Known by its key, over TLS without a client certificate.
  { name: "bff", key: BFF_KEY, methods: ["Login", "VerifyToken"] },
]);

/** With TLS and a client CA, a caller is known by its certificate on both ports, or by its key. */
describe.each(BACKENDS)("mTLS on both ports (%s backends)", (backend) => {
  let t: TestApp;
  let grpcAddress: string;
  let httpsUrl: string;
  let accessToken: string;
  beforeAll(async () => {
    t = await startTestApp(backend, {
      CALLERS,
      TLS_CERT_FILE: join(FIXTURES, "server.pem"),
      TLS_KEY_FILE: join(FIXTURES, "server.key"),
      TLS_CLIENT_CA_FILE: join(FIXTURES, "ca.pem"),
    });
    grpcAddress = `localhost:${t.app.grpcPort}`;
    httpsUrl = `https://localhost:${t.app.httpPort}`;
    const billing = createIdentityClient({ baseUrl: httpsUrl, tls: { ca: CA, ...identity("billing") } });
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    accessToken = (await billing.login({ appId: APP.appId, code })).tokens?.accessToken as string;
  });
  afterAll(() => t.stop());

  const verifierAs = (name: string) =>
    createVerifier({
      address: grpcAddress,
      credentials: grpc.credentials.createSsl(
        Buffer.from(CA),
        Buffer.from(pem(`${name}.key`)),
        Buffer.from(pem(`${name}.pem`)),
      ),
    });

  it("names the caller by its certificate over gRPC, and holds it to its methods", async () => {
    const orders = verifierAs("orders");
    try {
      expect((await orders.verify(accessToken)).appId).toBe(APP.appId);
    } finally {
      orders.close();
    }
    const client = createIdentityClient({ baseUrl: httpsUrl, tls: { ca: CA, ...identity("orders") } });
    expect((await client.verifyToken({ accessToken })).claims?.appId).toBe(APP.appId);
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    expect(await connectFailure(client.login({ appId: APP.appId, code }))).toMatchObject({
      code: Code.PermissionDenied,
      reason: "CALLER_NOT_ALLOWED",
    });
  });

  it("serves HTTP/1.1 over TLS too, and takes a caller key from a client without a certificate", async () => {
    const bff = createIdentityClient({ baseUrl: httpsUrl, tls: { ca: CA }, callerKey: BFF_KEY });
    expect((await bff.verifyToken({ accessToken })).claims?.appId).toBe(APP.appId);
    const anonymous = createIdentityClient({ baseUrl: httpsUrl, tls: { ca: CA } });
    expect(await connectFailure(anonymous.verifyToken({ accessToken }))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "CALLER_UNAUTHENTICATED",
    });
    const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpsRequest(
        `${httpsUrl}/identity.v1.IdentityService/VerifyToken`,
        {
          method: "POST",
          ca: CA,
          ...identity("billing"),
          headers: { "content-type": "application/json" },
        },
        (res) => {
          let text = "";
          res.on("data", (chunk) => {
            text += chunk;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ accessToken }));
    });
    expect(body.status).toBe(200);
    expect(JSON.parse(body.text).claims.appId).toBe(APP.appId);
  });

  it("gives nothing to a certificate from another CA, whatever name it carries", async () => {
    const impostor = verifierAs("impostor");
    try {
      expect((await rejection(impostor.verify(accessToken), VerifyError)).reason).toBe(
        "CALLER_UNAUTHENTICATED",
      );
    } finally {
      impostor.close();
    }
    const overHttp = createIdentityClient({ baseUrl: httpsUrl, tls: { ca: CA, ...identity("impostor") } });
    expect(await connectFailure(overHttp.verifyToken({ accessToken }))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "CALLER_UNAUTHENTICATED",
    });
  });

  it("keeps health open to a client without a certificate, on both ports", async () => {
    const health = await new Promise<number>((resolve, reject) => {
      httpsRequest(`${httpsUrl}/healthz`, { ca: CA }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on("error", reject)
        .end();
    });
    expect(health).toBe(200);
    expect(await grpcHealth(grpcAddress, grpc.credentials.createSsl(Buffer.from(CA)))).toBe(
      HealthCheckResponse_ServingStatus.SERVING,
    );
  });
});
