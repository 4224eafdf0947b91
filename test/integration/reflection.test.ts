import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { startTestApp, type TestApp } from "../helpers/test-app.js";

const run = promisify(execFile);
const BUF = "node_modules/.bin/buf";

/** What a person debugging does: grpcurl-style calls with no .proto files, via `buf curl`. */
describe("gRPC server reflection and health", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("embedded");
  });
  afterAll(() => t.stop());

  const bufCurl = async (...args: string[]) =>
    (await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], { timeout: 20_000 }))
      .stdout;

  it.each(["grpc-v1", "grpc-v1alpha"])("lists every service (%s)", async (protocol) => {
    const out = await bufCurl(
      "--reflect-protocol",
      protocol,
      "--list-services",
      `http://127.0.0.1:${t.app.grpcPort}`,
    );
    expect(out.split("\n").filter(Boolean).sort()).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "identity.v1.AdminService",
      "identity.v1.IdentityService",
    ]);
  });

  it.each(["grpc-v1", "grpc-v1alpha"])(
    "lists every method of every service it lists (%s)",
    async (protocol) => {
      const out = await bufCurl(
        "--reflect-protocol",
        protocol,
        "--list-methods",
        `http://127.0.0.1:${t.app.grpcPort}`,
      );
      const methods = out.split("\n").filter(Boolean);
      expect(methods).toContain("identity.v1.IdentityService/VerifyToken");
      expect(methods).toContain("grpc.health.v1.Health/Check");
      expect(methods).toContain("grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
      expect(methods).toContain("grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
    },
  );

  it("calls VerifyToken from JSON, and shows the error reason", async () => {
    const { code } = t.sandbox.issueCode({ appId: "wxtestapp0000001", openid: "o-curl" });
    const login = await t.connect.login({ appId: "wxtestapp0000001", code });
    const url = `http://127.0.0.1:${t.app.grpcPort}/identity.v1.IdentityService/VerifyToken`;
    const out = await bufCurl("-d", JSON.stringify({ access_token: login.tokens?.accessToken }), url);
    expect(JSON.parse(out).claims.openid).toBe("o-curl");

    const failed = await bufCurl("-d", `{"access_token":"garbage"}`, url).catch(
      (e: { stderr: string }) => e.stderr,
    );
    const error = JSON.parse(failed);
    expect(error.code).toBe("unauthenticated");
    expect(error.details[0].type).toBe("google.rpc.ErrorInfo");
    expect(fromBinary(ErrorInfoSchema, Buffer.from(error.details[0].value, "base64")).reason).toBe(
      "TOKEN_INVALID",
    );
  });

  it("reports SERVING on grpc.health.v1", async () => {
    const out = await bufCurl(`http://127.0.0.1:${t.app.grpcPort}/grpc.health.v1.Health/Check`);
    expect(JSON.parse(out)).toEqual({ status: "SERVING" });
  });
});
