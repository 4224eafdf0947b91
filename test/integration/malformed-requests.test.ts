import { connect as connectHttp2 } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { errorInfoOfGrpcError } from "../../src/wire/errors.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

/**
 * Bytes that are not the method's request, sent on every port in every protocol the service
 * speaks: each is INVALID_ARGUMENT (or the documented code) with an ErrorInfo naming the field,
 * never INTERNAL, and the service keeps answering.
 */

const LOGIN = "/identity.v1.IdentityService/Login";
/** Field 1 (app_id) announcing 5 bytes and ending: protobuf-es reads "premature EOF". */
const TRUNCATED = Buffer.from([0x0a, 0x05, 0x61]);

function envelope(flags: number, data: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

interface Failure {
  code: Code;
  reason?: string;
  field?: string;
  message: string;
}

function failureOf(error: ConnectError | undefined): Failure {
  if (!error) throw new Error("expected an error status");
  const info = error.findDetails(ErrorInfoSchema)[0];
  return { code: error.code, reason: info?.reason, field: info?.metadata.field, message: error.rawMessage };
}

async function connectCall(t: TestApp, body: Uint8Array, headers: Record<string, string>) {
  const res = await fetch(`${t.httpUrl}${LOGIN}`, { method: "POST", headers, body });
  return {
    status: res.status,
    failure: failureOf(
      errorFromJsonBytes(
        new Uint8Array(await res.arrayBuffer()),
        undefined,
        new ConnectError("not a Connect error", Code.Unknown),
      ),
    ),
  };
}

async function grpcWebCall(t: TestApp, body: Uint8Array, headers: Record<string, string> = {}) {
  const res = await fetch(`${t.httpUrl}${LOGIN}`, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", ...headers },
    body,
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  const trailerAt = bytes.findIndex((b, i) => b === trailerFlag && i + 5 <= bytes.length);
  return failureOf(findTrailerError(trailerParse(bytes.subarray(trailerAt + 5))));
}

/** gRPC over h2c on the HTTP port, with node:http2 so the bytes are exactly ours. */
async function h2cGrpcCall(t: TestApp, body: Uint8Array, headers: Record<string, string> = {}) {
  const session = connectHttp2(t.httpUrl);
  try {
    const trailers = await new Promise<Headers>((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": LOGIN,
        "content-type": "application/grpc+proto",
        te: "trailers",
        ...headers,
      });
      stream.on("error", reject);
      stream.on("data", () => {});
      stream.on("trailers", (raw) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(raw)) if (typeof v === "string") h.set(k, v);
        resolve(h);
      });
      stream.end(body);
    });
    return failureOf(findTrailerError(trailers));
  } finally {
    session.close();
  }
}

async function grpcJsCall(t: TestApp, body: Buffer): Promise<Failure> {
  const raw = new grpc.Client(`127.0.0.1:${t.app.grpcPort}`, grpc.credentials.createInsecure());
  try {
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      raw.makeUnaryRequest(
        LOGIN,
        (b: Buffer) => b,
        (b: Buffer) => b,
        body,
        (e) => resolve(e),
      ),
    );
    const info = errorInfoOfGrpcError(err);
    return {
      code: err?.code as number as Code,
      reason: info?.reason,
      field: info?.metadata.field,
      message: err?.details ?? "",
    };
  } finally {
    raw.close();
  }
}

const MALFORMED = { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "request" };

describe.each(BACKENDS)("malformed requests get a reasoned error on every port (%s)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, { MAX_REQUEST_BYTES: "4096" });
  });
  afterAll(() => t.stop());

  it("truncated protobuf: INVALID_ARGUMENT naming the request, in all four protocols", async () => {
    const connect = await connectCall(t, TRUNCATED, { "content-type": "application/proto" });
    expect(connect.status).toBe(400);
    expect(connect.failure).toMatchObject(MALFORMED);
    expect(connect.failure.message).toMatch(/premature EOF/);
    expect(await grpcWebCall(t, envelope(0, TRUNCATED))).toMatchObject(MALFORMED);
    expect(await h2cGrpcCall(t, envelope(0, TRUNCATED))).toMatchObject(MALFORMED);
    expect(await grpcJsCall(t, TRUNCATED)).toMatchObject(MALFORMED);
  });

  it("malformed JSON, and JSON of the wrong type, name the request or the field", async () => {
    const json = { "content-type": "application/json" };
    expect((await connectCall(t, Buffer.from("{"), json)).failure).toMatchObject(MALFORMED);
    const wrongType = await connectCall(t, Buffer.from(JSON.stringify({ appId: 5 })), json);
    expect(wrongType.status).toBe(400);
    expect(wrongType.failure).toMatchObject({
      code: Code.InvalidArgument,
      reason: "INVALID_ARGUMENT",
      field: "app_id",
    });
  });

  it("an envelope cut short, a compressed flag with no encoding, an unknown encoding", async () => {
    const cut = envelope(0, TRUNCATED).subarray(0, 6);
    expect(await h2cGrpcCall(t, cut)).toMatchObject(MALFORMED);
    expect(await grpcWebCall(t, cut)).toMatchObject(MALFORMED);
    expect(await h2cGrpcCall(t, envelope(1, TRUNCATED))).toMatchObject(MALFORMED);
    expect(await h2cGrpcCall(t, envelope(1, TRUNCATED), { "grpc-encoding": "zstd" })).toMatchObject({
      code: Code.Unimplemented,
      reason: "UNSUPPORTED_REQUEST",
      field: "encoding",
    });
  });

  it("a bad timeout header names the timeout; an oversized body is REQUEST_TOO_LARGE", async () => {
    expect(await h2cGrpcCall(t, envelope(0, Buffer.alloc(0)), { "grpc-timeout": "soon" })).toMatchObject({
      code: Code.InvalidArgument,
      reason: "INVALID_ARGUMENT",
      field: "timeout",
    });
    const big = Buffer.concat([
      Buffer.from([0x0a]),
      Buffer.from([0x80, 0x80, 0x01]),
      Buffer.alloc(8192, 0x61),
    ]);
    expect(t.config.maxRequestBytes).toBeLessThan(big.length);
    const connect = await connectCall(t, big, { "content-type": "application/proto" });
    expect(connect.failure).toMatchObject({
      code: Code.ResourceExhausted,
      reason: "REQUEST_TOO_LARGE",
      field: "request",
    });
    expect(await grpcWebCall(t, envelope(0, big))).toMatchObject({
      code: Code.ResourceExhausted,
      reason: "REQUEST_TOO_LARGE",
    });
  });

  it("keeps serving well-formed calls, and logs nothing of the bytes", async () => {
    const { appId } = TEST_APPS[0] as (typeof TEST_APPS)[0];
    const { code } = t.sandbox.issueCode({ appId });
    expect((await t.connect.login({ appId, code })).tokens?.accessToken).toBeTruthy();
    expect(t.log.lines.filter((l) => l.level === "error")).toEqual([]);
  });
});
