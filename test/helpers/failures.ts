import { type Code, ConnectError } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { expect } from "vitest";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { grpcReason } from "./grpc-client.js";

/** The status code and ErrorInfo reason of a failed Connect call. */
export async function connectFailure(
  promise: Promise<unknown>,
): Promise<{ code: Code; reason?: string; field?: string; message: string }> {
  try {
    await promise;
  } catch (err) {
    const e = ConnectError.from(err);
    const info = e.findDetails(ErrorInfoSchema)[0];
    expect(info?.domain).toBe("identity");
    return { code: e.code, reason: info?.reason, field: info?.metadata.field, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}

export async function grpcFailure(
  promise: Promise<unknown>,
): Promise<{ code: grpc.status; reason?: string }> {
  try {
    await promise;
  } catch (err) {
    return { code: (err as grpc.ServiceError).code, reason: grpcReason(err) };
  }
  throw new Error("expected the call to fail");
}

/** The error a promise rejected with, which must be an instance of `type`. */
export async function rejection<E extends Error>(
  promise: Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(type);
    return err as E;
  }
  throw new Error(`expected a ${type.name}`);
}
