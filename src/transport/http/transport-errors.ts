import { Code, ConnectError } from "@connectrpc/connect";
import {
  createAsyncIterable,
  encodeEnvelope,
  readAllBytes,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { explainTransportError } from "../../wire/errors.js";

/**
 * connect-es raises some errors before any of our code runs (undecodable bytes, a body over the
 * size limit, an unknown compression, a bad timeout header) and encodes them itself, with no
 * ErrorInfo, and undecodable protobuf as INTERNAL. connect-es offers no hook between its decoding
 * and its encoding, so this reads the encoded error back and rewrites it, in whichever protocol
 * the call came in, into explainTransportError's terms. Successful calls pass untouched, but for
 * gRPC and gRPC-web, whose status is in the trailers, a generator over the body.
 *
 * It uses connect-es's protocol helpers, which are not semver-stable: package.json pins connect.
 */
export function explainingTransportErrors(handler: UniversalHandler): UniversalHandler {
  const explaining = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const res = await handler(req);
    const contentType = req.header.get("content-type") ?? "";
    if (contentType.startsWith("application/grpc-web")) return { ...res, body: grpcWebBody(res.body) };
    if (contentType.startsWith("application/grpc")) return { ...res, body: grpcBody(res) };
    return connectUnary(res);
  };
  return Object.assign(explaining, handler);
}

function explained(error: ConnectError | undefined): ConnectError | undefined {
  if (!error) return undefined;
  const better = explainTransportError(error);
  return better === error ? undefined : better;
}

/** Connect unary: an error is a JSON body with an HTTP status (left alone if compressed). */
async function connectUnary(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  if (res.status === 200 || !res.body || res.header?.has("content-encoding")) return res;
  const bytes = await readAllBytes(res.body, Number.MAX_SAFE_INTEGER);
  let better: ConnectError | undefined;
  try {
    better = explained(errorFromJsonBytes(bytes, undefined, new ConnectError("", Code.Unknown)));
  } catch {
    // Not a Connect error body (the router's bare 404 or 415): as it was.
  }
  const body = better ? errorToJsonBytes(better, {}) : bytes;
  const header = new Headers(res.header);
  header.set("content-length", String(body.byteLength));
  return {
    ...res,
    status: better ? codeToHttpStatus(better.code) : res.status,
    header,
    body: createAsyncIterable([body]),
  };
}

/** gRPC: the status is in the trailers, complete once the body is. */
async function* grpcBody(res: UniversalServerResponse): AsyncGenerator<Uint8Array> {
  if (res.body) yield* res.body;
  if (!res.trailer) return;
  const better = explained(findTrailerError(res.trailer));
  if (better) {
    res.trailer.delete("grpc-status-details-bin");
    setTrailerStatus(res.trailer, better);
  }
}

/** gRPC-web: the trailers are the body's last envelope, flagged 0x80 (left alone if compressed). */
async function* grpcWebBody(body: UniversalServerResponse["body"]): AsyncGenerator<Uint8Array> {
  if (!body) return;
  for await (const chunk of body) {
    const trailer = chunk[0] === trailerFlag ? trailerParse(chunk.subarray(5)) : undefined;
    const better = trailer && explained(findTrailerError(trailer));
    if (!better) {
      yield chunk;
      continue;
    }
    trailer.delete("grpc-status-details-bin");
    yield encodeEnvelope(trailerFlag, trailerSerialize(setTrailerStatus(trailer, better)));
  }
}
