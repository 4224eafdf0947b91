import { createHmac, createPublicKey, generateKeyPairSync, sign } from "node:crypto";
import { createServer } from "node:http";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newRefreshToken } from "../../src/domain/tokens.js";
import { IdentityService } from "../../src/gen/identity/v1/identity_pb.js";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
const b64 = (value: unknown) =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/**
 * The forgeries an attacker can build without our private key, sent to a running service over
 * gRPC: each must be UNAUTHENTICATED, and no header may make the service fetch anything.
 * (Cases that need our signature, such as a wrong iss or aud, are in test/unit/tokens.test.ts.)
 */
describe("VerifyToken refuses forgeries (embedded backends, over gRPC)", () => {
  let t: TestApp;
  let genuine: string;
  let kid: string;
  let publicJwk: Record<string, string>;
  let fetches = 0;
  const lure = createServer((_req, res) => {
    fetches++;
    res.end("{}");
  });
  let lureUrl: string;

  beforeAll(async () => {
    t = await startTestApp("embedded");
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    genuine = (await t.connect.login({ appId: APP.appId, code })).tokens?.accessToken as string;
    kid = JSON.parse(Buffer.from(genuine.split(".")[0] as string, "base64url").toString()).kid;
    const jwks = (await (await fetch(`${t.httpUrl}/.well-known/jwks.json`)).json()) as {
      keys: Array<Record<string, string>>;
    };
    publicJwk = jwks.keys.find((k) => k.kid === kid) as Record<string, string>;
    await new Promise<void>((resolve) => lure.listen(0, "127.0.0.1", resolve));
    lureUrl = `http://127.0.0.1:${(lure.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await t.stop();
    lure.close();
  });

  const payload = () => JSON.parse(Buffer.from(genuine.split(".")[1] as string, "base64url").toString());
  const refused = async (token: string) =>
    expect(await grpcFailure(t.grpc.call("verifyToken", { accessToken: token }))).toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
    });

  it("accepts the genuine token (the baseline the forgeries start from)", async () => {
    expect((await t.grpc.call("verifyToken", { accessToken: genuine })).claims?.appId).toBe(APP.appId);
  });

  it.each(["none", "None", "NONE", "nOnE"])("alg %s with an empty signature", async (alg) => {
    await refused(`${b64({ alg, typ: "at+jwt", kid })}.${b64(payload())}.`);
  });

  it("HS256 keyed with our published public key, as PEM, DER and JWK JSON", async () => {
    const key = createPublicKey({ key: publicJwk, format: "jwk" });
    const secrets = [
      key.export({ format: "pem", type: "spki" }),
      key.export({ format: "der", type: "spki" }),
      JSON.stringify(publicJwk),
      JSON.stringify(key.export({ format: "jwk" })),
    ];
    for (const secret of secrets) {
      const input = `${b64({ alg: "HS256", typ: "at+jwt", kid })}.${b64(payload())}`;
      await refused(`${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`);
    }
  });

  it("our kid on another key, or kid unknown, missing, very long or path-like", async () => {
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const forge = (header: Record<string, unknown>) => {
      const input = `${b64(header)}.${b64(payload())}`;
      const sig = sign("sha256", Buffer.from(input), { key: other.privateKey, dsaEncoding: "ieee-p1363" });
      return `${input}.${sig.toString("base64url")}`;
    };
    for (const k of [kid, "unknown", undefined, "k".repeat(3000), "../../../../etc/passwd", "/dev/stdin"]) {
      await refused(forge({ alg: "ES256", typ: "at+jwt", ...(k === undefined ? {} : { kid: k }) }));
    }
  });

  it("jku, x5u, jwk and x5c headers pointing at the attacker's key are never used or fetched", async () => {
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const header = {
      alg: "ES256",
      typ: "at+jwt",
      kid: "attacker",
      jku: `${lureUrl}/jwks.json`,
      x5u: `${lureUrl}/cert.pem`,
      jwk: other.publicKey.export({ format: "jwk" }),
      x5c: ["MIIB"],
    };
    const input = `${b64(header)}.${b64(payload())}`;
    const sig = sign("sha256", Buffer.from(input), { key: other.privateKey, dsaEncoding: "ieee-p1363" });
    await refused(`${input}.${sig.toString("base64url")}`);
    await refused(`${b64({ ...header, kid })}.${b64(payload())}.${sig.toString("base64url")}`);
    expect(fetches).toBe(0);
  });

  it("crit, nesting and encryption (JWE-shaped)", async () => {
    const [, body, sig] = genuine.split(".") as [string, string, string];
    await refused(`${b64({ alg: "ES256", typ: "at+jwt", kid, crit: ["urn:x"], "urn:x": 1 })}.${body}.${sig}`);
    await refused(`${b64({ alg: "ES256", typ: "at+jwt", kid, cty: "JWT" })}.${b64(genuine)}.${sig}`);
    await refused(`${b64({ alg: "RSA-OAEP", enc: "A256GCM", kid })}.AAAA.AAAA.AAAA.AAAA`);
  });

  it("a token over the size cap, a refresh token, and a flipped bit anywhere", async () => {
    await refused(`${genuine}${"A".repeat(5000)}`);
    await refused(newRefreshToken().token);
    for (let i = 0; i < genuine.length; i += 7) {
      if (genuine[i] === ".") continue;
      const flipped = genuine.slice(0, i) + (genuine[i] === "A" ? "B" : "A") + genuine.slice(i + 1);
      await refused(flipped);
    }
  });

  it("claims changed under the genuine signature: exp, iss, aud, typ, sid", async () => {
    // The genuine token is in the verified-token cache, whose key is the signature's tail: these
    // forgeries find its entry and must still be refused.
    await t.grpc.call("verifyToken", { accessToken: genuine });
    const [header, , sig] = genuine.split(".") as [string, string, string];
    const changes = [{ exp: 4102444800 }, { iss: "other" }, { aud: "other" }, { sid: "another-session" }];
    for (const change of changes) await refused(`${header}.${b64({ ...payload(), ...change })}.${sig}`);
    const typJwt = b64({ ...JSON.parse(Buffer.from(header, "base64url").toString()), typ: "JWT" });
    await refused(`${typJwt}.${genuine.split(".")[1]}.${sig}`);
  });
});

describe("the HTTP port answers RPCs over POST only", () => {
  let t: TestApp;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp("embedded");
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    token = (await t.connect.login({ appId: APP.appId, code })).tokens?.accessToken as string;
  });
  afterAll(() => t.stop());

  it("refuses VerifyToken over Connect GET, where the token would sit in the URL", async () => {
    const overGet = createClient(
      IdentityService,
      createConnectTransport({ baseUrl: t.httpUrl, httpVersion: "1.1", useHttpGet: true }),
    );
    expect(await connectFailure(overGet.verifyToken({ accessToken: token }))).toMatchObject({
      code: Code.InvalidArgument,
      reason: "INVALID_ARGUMENT",
      field: "method",
    });
    const raw = await fetch(`${t.httpUrl}/identity.v1.IdentityService/VerifyToken?encoding=json&message={}`);
    expect(raw.status).toBe(405);
    expect(raw.headers.get("allow")).toBe("POST");
    // The same call over POST answers.
    expect((await t.connect.verifyToken({ accessToken: token })).claims?.appId).toBe(APP.appId);
  });
});
