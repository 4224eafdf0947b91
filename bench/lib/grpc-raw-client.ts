import { AUTHORIZATION } from "./caller.js";
import { createH2Pool } from "./h2-pool.js";

/**
 * A minimal gRPC caller on node:http2 (a lighter load source than a full client), for latency
 * percentiles. Resolves when the call ends with grpc-status 0, rejects otherwise.
 */
export function createRawGrpcCaller(address: string, sessions = 4) {
  const pool = createH2Pool(`http://${address}`, sessions);
  return {
    call(path: string, frame: Buffer): Promise<void> {
      return new Promise((resolve, reject) => {
        const stream = pool.next().request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
          authorization: AUTHORIZATION,
        });
        const settle = (fields: Record<string, unknown>) => {
          const status = fields["grpc-status"];
          if (status === undefined) return;
          if (status === "0") resolve();
          else reject(new Error(`grpc-status ${status}: ${fields["grpc-message"]}`));
        };
        stream.on("data", () => {});
        // A failure may come as "trailers-only": the status in the response headers.
        stream.on("response", settle);
        stream.on("trailers", settle);
        stream.on("error", reject);
        stream.end(frame);
      });
    },
    close: pool.close,
  };
}
