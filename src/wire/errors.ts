import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { type ErrorReason, IdentityError } from "../domain/errors.js";
import { type ErrorInfo, ErrorInfoSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../gen/google/rpc/status_pb.js";
import { errorSummary } from "../util/error-summary.js";

/**
 * Errors on the wire, in one place: which status code each reason gets and whether it is logged;
 * the google.rpc.ErrorInfo detail every failure carries; its encoding in gRPC status trailers;
 * errors crossing between the main thread and the gRPC thread; and the client's reading of them.
 * Numerically, gRPC and Connect codes are the same.
 */

export const ERROR_DOMAIN = "identity";

interface ReasonRule {
  code: Code;
  /** Logged as a dependency failure: an operator must hear of it (a user's bad token is no news). */
  logged?: true;
}

/** The one table from domain reasons to status codes. */
export const REASONS: Record<ErrorReason, ReasonRule> = {
  INVALID_ARGUMENT: { code: Code.InvalidArgument },
  UNKNOWN_APP: { code: Code.InvalidArgument },
  TOKEN_INVALID: { code: Code.Unauthenticated },
  TOKEN_EXPIRED: { code: Code.Unauthenticated },
  TOKEN_REVOKED: { code: Code.Unauthenticated },
  TOKEN_APP_MISMATCH: { code: Code.Unauthenticated },
  REFRESH_TOKEN_REUSED: { code: Code.Unauthenticated },
  INVALID_CODE: { code: Code.Unauthenticated },
  CODE_USED: { code: Code.Unauthenticated },
  HIGH_RISK_USER: { code: Code.PermissionDenied },
  USER_DISABLED: { code: Code.PermissionDenied },
  INVALID_CREDENTIALS: { code: Code.Unauthenticated },
  PERMISSION_MISSING: { code: Code.PermissionDenied },
  USER_NOT_FOUND: { code: Code.NotFound },
  USERNAME_TAKEN: { code: Code.AlreadyExists },
  ACCOUNT_CONFLICT: { code: Code.FailedPrecondition },
  MERGE_CONFLICT: { code: Code.Aborted },
  WECHAT_RATE_LIMITED: { code: Code.ResourceExhausted },
  WECHAT_APP_REJECTED: { code: Code.FailedPrecondition, logged: true },
  WECHAT_UNAVAILABLE: { code: Code.Unavailable, logged: true },
  STORAGE_UNAVAILABLE: { code: Code.Unavailable, logged: true },
  STORAGE_CONFLICT: { code: Code.Aborted },
  BAD_BASE64: { code: Code.InvalidArgument },
  BAD_IV_LENGTH: { code: Code.InvalidArgument },
  DECRYPT_FAILED: { code: Code.InvalidArgument },
  WATERMARK_MISMATCH: { code: Code.InvalidArgument },
  USER_MISMATCH: { code: Code.InvalidArgument },
  SIGNATURE_MISMATCH: { code: Code.InvalidArgument },
  DATA_TOO_OLD: { code: Code.InvalidArgument },
  SESSION_KEY_EXPIRED: { code: Code.FailedPrecondition },
  INVALID_PHONE_CODE: { code: Code.InvalidArgument },
  RATE_LIMITED: { code: Code.ResourceExhausted },
  SUBSCRIBER_TOO_SLOW: { code: Code.ResourceExhausted },
  SHUTTING_DOWN: { code: Code.Unavailable },
  CALLER_UNAUTHENTICATED: { code: Code.Unauthenticated },
  CALLER_NOT_ALLOWED: { code: Code.PermissionDenied },
  // Raised by the transports before a method runs (explainTransportError).
  REQUEST_TOO_LARGE: { code: Code.ResourceExhausted },
  UNSUPPORTED_REQUEST: { code: Code.Unimplemented },
  DEADLINE_EXCEEDED: { code: Code.DeadlineExceeded },
};

/** A ConnectError carrying an ErrorInfo with the reason and its metadata. */
export function errorWithInfo(
  message: string,
  code: Code,
  reason: string,
  metadata: Readonly<Record<string, string>> = {},
  retryAfterMs?: number,
): ConnectError {
  const error = new ConnectError(message, code, undefined, [
    { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }) },
  ]);
  if (retryAfterMs !== undefined) {
    const retryDelay = {
      seconds: BigInt(Math.floor(retryAfterMs / 1000)),
      nanos: (retryAfterMs % 1000) * 1e6,
    };
    error.details.push({ desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay }) });
  }
  return error;
}

/** Bytes that do not decode as the method's request message, on any port and in any encoding. */
export function malformedRequestError(detail?: string): ConnectError {
  const message = "request is not a valid protobuf message";
  return errorWithInfo(detail ? `${message}: ${detail}` : message, Code.InvalidArgument, "INVALID_ARGUMENT", {
    field: "request",
  });
}

function hasErrorInfo(err: ConnectError): boolean {
  return err.details.some((d) => ("desc" in d ? d.desc.typeName : d.type) === ErrorInfoSchema.typeName);
}

/**
 * An error a transport raised itself, before any method ran (connect-es reading, sizing and
 * decoding a request), in the wire table's terms: the code the protocol calls for and an
 * ErrorInfo naming the field. connect-es answers undecodable protobuf INTERNAL ("parse binary"),
 * which blames us for the caller's bytes; it is INVALID_ARGUMENT here, as on the grpc-js port.
 * Errors that already carry an ErrorInfo (ours) pass unchanged.
 */
export function explainTransportError(err: ConnectError): ConnectError {
  if (hasErrorInfo(err)) return err;
  const message = err.rawMessage;
  if (/^parse binary: |^received compressed envelope/.test(message)) {
    return malformedRequestError(message.replace(/^parse binary: /, ""));
  }
  switch (err.code) {
    case Code.InvalidArgument: {
      // protobuf-es names the JSON field it could not read ("cannot decode field pkg.Msg.name ...").
      const jsonField = /cannot decode field [\w.]+\.(\w+) from JSON/.exec(message)?.[1];
      const field =
        jsonField ??
        (/timeout/.test(message)
          ? "timeout"
          : /connect-protocol-version|connect=/.test(message)
            ? "connect-protocol-version"
            : "request");
      return errorWithInfo(message, Code.InvalidArgument, "INVALID_ARGUMENT", { field });
    }
    case Code.ResourceExhausted:
      return errorWithInfo(message, Code.ResourceExhausted, "REQUEST_TOO_LARGE", { field: "request" });
    case Code.Unimplemented:
      return errorWithInfo(message, Code.Unimplemented, "UNSUPPORTED_REQUEST", {
        field: /compression/.test(message) ? "encoding" : "request",
      });
    case Code.DeadlineExceeded:
      return errorWithInfo(message, Code.DeadlineExceeded, "DEADLINE_EXCEEDED", { field: "timeout" });
    default:
      // Anything else connect-es raises is its own fault or a call already gone (CANCELED).
      return errorWithInfo(message, err.code, codeName(err.code));
  }
}

/** What a failed call becomes: the error the client sees and, for a failure of ours, its log line. */
export interface MappedFailure {
  error: ConnectError;
  /** The reason the client reads in ErrorInfo (or the status's name). */
  reason: string;
  /** Present when an operator must hear of it: a dependency failed, or a bug. */
  log?: { level: "warn" | "error"; message: string; fields: Record<string, unknown> };
}

/**
 * Converts whatever a use case threw into the ConnectError the client sees. Anything that is not
 * an IdentityError is a bug: it is logged (name and stack only, the message may carry data) and
 * answered INTERNAL without details.
 */
export function mapFailure(err: unknown): MappedFailure {
  if (err instanceof IdentityError) {
    const rule = REASONS[err.reason];
    return {
      error: errorWithInfo(err.message, rule.code, err.reason, err.metadata, err.retryAfterMs),
      reason: err.reason,
      log: rule.logged
        ? {
            level: "warn",
            message: "dependency failure",
            fields: { ...err.metadata, cause: errorSummary(err.cause) },
          }
        : undefined,
    };
  }
  if (err instanceof ConnectError) {
    const info = err.findDetails(ErrorInfoSchema)[0];
    return { error: err, reason: info?.reason ?? codeName(err.code) };
  }
  return {
    error: errorWithInfo("internal error", Code.Internal, "INTERNAL"),
    reason: "INTERNAL",
    log: {
      level: "error",
      message: "unexpected error",
      fields: { error: err instanceof Error ? err.name : typeof err, stack: stackOf(err) },
    },
  };
}

/** A status code as reasons are spelled: Code.DeadlineExceeded -> "DEADLINE_EXCEEDED". */
export const codeName = (code: Code): string => Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();

function stackOf(err: unknown): string | undefined {
  // Only the frames: the message (the first line) and whatever a driver appends (postgres.js adds
  // the query) can carry data.
  if (!(err instanceof Error)) return undefined;
  const frames = err.stack?.split("\n").filter((line) => /^\s+at /.test(line));
  return frames?.slice(0, 7).join("\n");
}

/** A ConnectError's details as type names and encoded messages, whether made here or received. */
function encodedDetails(err: ConnectError): Array<{ type: string; value: Uint8Array }> {
  return err.details.map((d) =>
    "desc" in d
      ? { type: d.desc.typeName, value: toBinary(d.desc, create(d.desc, d.value as never)) }
      : { type: d.type, value: d.value },
  );
}

/** Encodes a ConnectError as grpc-js status, with google.rpc.Status in grpc-status-details-bin. */
export function toGrpcStatus(err: ConnectError): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  if (err.details.length > 0) {
    const details = encodedDetails(err).map((d) => ({
      typeUrl: `type.googleapis.com/${d.type}`,
      value: d.value,
    }));
    const status = create(StatusSchema, { code: err.code, message: err.rawMessage, details });
    metadata.set("grpc-status-details-bin", Buffer.from(toBinary(StatusSchema, status)));
  }
  return { code: err.code as number as grpc.status, details: err.rawMessage, metadata };
}

/** The ErrorInfo the service put into a gRPC error's trailers, if any. */
export function errorInfoOfGrpcError(err: unknown): ErrorInfo | undefined {
  const bin = (err as grpc.ServiceError | null)?.metadata?.get("grpc-status-details-bin")[0];
  if (!(bin instanceof Buffer)) return undefined;
  try {
    for (const detail of fromBinary(StatusSchema, bin).details) {
      const info = anyUnpack(detail, ErrorInfoSchema);
      if (info) return info;
    }
  } catch {
    // Not a google.rpc.Status: no ErrorInfo.
  }
  return undefined;
}

/** A ConnectError as it crosses between the threads (structured-cloneable). */
export interface ErrorData {
  code: Code;
  message: string;
  details: Array<{ type: string; value: Uint8Array }>;
}

/** For the crossing: a ConnectError as it is, anything else as INTERNAL (never its text). */
export function errorData(err: unknown): ErrorData {
  const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal);
  return { code: error.code, message: error.rawMessage, details: encodedDetails(error) };
}

export function errorFromData(data: ErrorData): ConnectError {
  const error = new ConnectError(data.message, data.code);
  error.details = data.details;
  return error;
}
