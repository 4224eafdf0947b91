import { type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { AUTHORIZATION } from "./caller.js";
import { createH2Pool } from "./h2-pool.js";

/**
 * A minimal Connect-protocol client on node:http2 (unary, binary): a POST of the encoded request
 * with `application/proto`, the encoded response back, or the Connect error JSON. It is the
 * protocol the BFF's connect-node client speaks, at a fraction of the client's CPU, so that on
 * this 2-core machine the load generator leaves more of the CPU to the service it measures.
 */
export function createRawConnectClient(baseUrl: string, sessions = 4) {
  const pool = createH2Pool(baseUrl, sessions);

  /** Calls `/<service>/<method>` with an encoded request; decodes the answer with `output`. */
  function call<O extends DescMessage>(path: string, body: Uint8Array, output: O): Promise<MessageShape<O>> {
    return new Promise((resolve, reject) => {
      const stream = pool.next().request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/proto",
        "connect-protocol-version": "1",
        authorization: AUTHORIZATION,
        "content-length": String(body.length),
      });
      let status = 0;
      const chunks: Buffer[] = [];
      stream.on("response", (headers) => {
        status = Number(headers[":status"]);
      });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        const payload = Buffer.concat(chunks);
        if (status === 200) resolve(fromBinary(output, payload));
        else reject(new Error(`HTTP ${status}: ${payload.toString("utf8").slice(0, 200)}`));
      });
      stream.on("error", reject);
      stream.end(body);
    });
  }

  return {
    call,
    close: pool.close,
  };
}
