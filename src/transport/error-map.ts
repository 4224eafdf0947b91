import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ErrorReason, IdentityError } from "../domain/errors.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { errorSummary, type Logger } from "../util/logger.js";

export const ERROR_DOMAIN = "identity";

/** The one table from domain reasons to status codes (numerically the same in gRPC and Connect). */
export const STATUS_OF_REASON: Record<ErrorReason, Code> = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  UNKNOWN_APP: Code.InvalidArgument,
  TOKEN_INVALID: Code.Unauthenticated,
  TOKEN_EXPIRED: Code.Unauthenticated,
  TOKEN_REVOKED: Code.Unauthenticated,
  REFRESH_TOKEN_REUSED: Code.Unauthenticated,
  INVALID_CODE: Code.Unauthenticated,
  CODE_USED: Code.Unauthenticated,
  HIGH_RISK_USER: Code.PermissionDenied,
  USER_DISABLED: Code.PermissionDenied,
  WECHAT_RATE_LIMITED: Code.ResourceExhausted,
  WECHAT_APP_REJECTED: Code.FailedPrecondition,
  WECHAT_UNAVAILABLE: Code.Unavailable,
  STORAGE_UNAVAILABLE: Code.Unavailable,
  STORAGE_CONFLICT: Code.Aborted,
  BAD_BASE64: Code.InvalidArgument,
  BAD_IV_LENGTH: Code.InvalidArgument,
  DECRYPT_FAILED: Code.InvalidArgument,
  WATERMARK_MISMATCH: Code.InvalidArgument,
  USER_MISMATCH: Code.InvalidArgument,
  SIGNATURE_MISMATCH: Code.InvalidArgument,
  DATA_TOO_OLD: Code.InvalidArgument,
  SESSION_KEY_EXPIRED: Code.FailedPrecondition,
  INVALID_PHONE_CODE: Code.InvalidArgument,
};

function withInfo(message: string, code: Code, reason: string, metadata: Readonly<Record<string, string>>) {
  return new ConnectError(message, code, undefined, [
    { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }) },
  ]);
}

/**
 * Converts whatever a use case threw into the ConnectError the client sees. Anything that is not
 * an IdentityError is a bug: it is logged (name and stack only, the message may carry data) and
 * answered INTERNAL without details.
 */
export function toConnectError(err: unknown, log: Logger, rpc: string): ConnectError {
  if (err instanceof IdentityError) {
    const code = STATUS_OF_REASON[err.reason];
    if (
      err.reason === "WECHAT_UNAVAILABLE" ||
      err.reason === "STORAGE_UNAVAILABLE" ||
      err.reason === "WECHAT_APP_REJECTED"
    ) {
      log.warn("dependency failure", {
        rpc,
        reason: err.reason,
        ...err.metadata,
        cause: errorSummary(err.cause),
      });
    }
    return withInfo(err.message, code, err.reason, err.metadata);
  }
  if (err instanceof ConnectError) return err;
  log.error("unexpected error", {
    rpc,
    error: err instanceof Error ? err.name : typeof err,
    stack: stackOf(err),
  });
  return withInfo("internal error", Code.Internal, "INTERNAL", {});
}

function stackOf(err: unknown): string | undefined {
  // The first line of a stack repeats the message; keep only the frames.
  return err instanceof Error ? err.stack?.split("\n").slice(1, 8).join("\n") : undefined;
}
