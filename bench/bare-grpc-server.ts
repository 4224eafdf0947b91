import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { VerifyTokenResponseSchema } from "../src/gen/identity/v1/identity_pb.js";

/**
 * The baseline for the VerifyToken benchmark: grpc-js answering the same method with a fixed,
 * pre-encoded reply and no work at all. Run as its own process: node dist/bench/bare-grpc-server.js PORT
 */
const reply = Buffer.from(
  toBinary(
    VerifyTokenResponseSchema,
    create(VerifyTokenResponseSchema, { claims: { userId: "u", appId: "wx" } }),
  ),
);
// grpc-js's defaults, channelz included; BENCH_BARE_CHANNELZ=0 turns it off as our server does.
const server = new grpc.Server(process.env.BENCH_BARE_CHANNELZ === "0" ? { "grpc.enable_channelz": 0 } : {});
server.addService(
  {
    verifyToken: {
      path: "/identity.v1.IdentityService/VerifyToken",
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  },
  { verifyToken: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, reply) },
);
server.bindAsync(`127.0.0.1:${process.argv[2]}`, grpc.ServerCredentials.createInsecure(), () => {
  process.stdout.write("bare server ready\n");
});
process.on("SIGTERM", () => server.forceShutdown());
