import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityService, VerifyTokenResponseSchema } from "../../src/gen/identity/v1/identity_pb.js";
import { createGrpcServer, type GrpcServer } from "../../src/transport/grpc/grpc-server.js";
import { mount } from "../../src/transport/mounted-service.js";
import { rejection } from "../helpers/failures.js";
import { createGrpcClient } from "../helpers/grpc-client.js";

/**
 * The gRPC adapter with a ServiceImpl of this test's own: handlers get a Connect HandlerContext
 * (deadline, abort signal), answer synchronously or through a promise, fail with a ConnectError's
 * code and message, and a method the implementation lacks is UNIMPLEMENTED.
 */
describe("the gRPC adapter of a Connect ServiceImpl", () => {
  const seen: { context?: HandlerContext; abortedDuringCall?: boolean } = {};
  const answer = (userId: string) => create(VerifyTokenResponseSchema, { claims: { userId } });
  const impl: Partial<ServiceImpl<typeof IdentityService>> = {
    verifyToken: (_req, context) => {
      seen.context = context;
      seen.abortedDuringCall = context.signal.aborted;
      return answer(`deadline in ${Math.round((context.timeoutMs() ?? 0) / 1000)} s`);
    },
    refresh: async () => {
      throw new ConnectError("refresh token expired", Code.Unauthenticated);
    },
    logout: (_req) => create(IdentityService.method.logout.output),
  };
  let server: GrpcServer;
  let client: ReturnType<typeof createGrpcClient>;

  beforeAll(async () => {
    server = createGrpcServer({
      services: [mount(IdentityService, impl)],
      maxReceiveBytes: 64 * 1024,
    });
    const port = await server.listen("127.0.0.1", 0);
    client = createGrpcClient(`127.0.0.1:${port}`);
  });
  afterAll(async () => {
    client.close();
    await server.stop(1000);
  });

  it("hands the handler a context with the call's deadline and an abort signal", async () => {
    const response = await client.call("verifyToken", { accessToken: "t" }, 30_000);
    expect(response.claims?.userId).toMatch(/^deadline in (29|30) s$/);
    expect(seen.abortedDuringCall).toBe(false);
    expect(seen.context?.protocolName).toBe("grpc");
    expect(seen.context?.method.name).toBe("VerifyToken");
  });

  it("answers synchronous handlers, and a ConnectError thrown in a promise with its code and message", async () => {
    expect(await client.call("logout", {})).toBeDefined();
    const err = await rejection(client.call("refresh", { refreshToken: "r" }), Error);
    expect((err as { code?: number }).code).toBe(Code.Unauthenticated);
    expect(err.message).toContain("refresh token expired");
  });

  it("answers UNIMPLEMENTED for a method the implementation lacks", async () => {
    const err = await rejection(client.call("decryptUserData", {}), Error);
    expect((err as { code?: number }).code).toBe(Code.Unimplemented);
    expect(err.message).toContain("DecryptUserData is not implemented");
  });
});
