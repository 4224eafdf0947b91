import { createServer } from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { IdentityService, VerifyTokenResponseSchema } from "../src/gen/identity/v1/identity_pb.js";

/**
 * Baselines for the Connect overhead benchmark, each answering POSTs with a fixed VerifyToken
 * reply and no work at all. Run as its own process: node dist/bench/bare-http-server.js MODE PORT
 *   http2    node:http2's stream API: what any HTTP/2 server on Node costs per request
 *   connect  connect-node's adapter with the same reply: what the Connect protocol layer adds
 */
const [mode, port] = process.argv.slice(2);
const reply = create(VerifyTokenResponseSchema, { claims: { userId: "u", appId: "wx" } });
const encodedReply = Buffer.from(toBinary(VerifyTokenResponseSchema, reply));

const server = createServer();
if (mode === "http2") {
  server.on("stream", (stream) => {
    stream.on("data", () => {});
    stream.on("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/proto" });
      stream.end(encodedReply);
    });
  });
} else if (mode === "connect") {
  server.on(
    "request",
    connectNodeAdapter({ routes: (router) => router.service(IdentityService, { verifyToken: () => reply }) }),
  );
} else {
  throw new Error(`unknown mode ${mode}: http2 or connect`);
}
server.listen(Number(port), "127.0.0.1", () => process.stdout.write(`bare ${mode} server ready\n`));
process.on("SIGTERM", () => process.exit(0));
