/**
 * Every failure the service reports on purpose. The reason is stable and machine-readable (it goes
 * into google.rpc.ErrorInfo); wire/errors.ts says, in one table, which status code it gets and whether it is logged.
 * Messages must never contain secrets: no session_key, token, code or app secret.
 */
export const ERROR_REASONS = [
  "INVALID_ARGUMENT",
  "UNKNOWN_APP",
  "TOKEN_INVALID",
  "TOKEN_EXPIRED",
  "TOKEN_REVOKED",
  "TOKEN_APP_MISMATCH",
  "REFRESH_TOKEN_REUSED",
  "INVALID_CODE",
  "CODE_USED",
  "HIGH_RISK_USER",
  "USER_DISABLED",
  "INVALID_CREDENTIALS",
  "PERMISSION_MISSING",
  "USER_NOT_FOUND",
  "USERNAME_TAKEN",
  "ACCOUNT_CONFLICT",
  "MERGE_CONFLICT",
  "WECHAT_RATE_LIMITED",
  "WECHAT_APP_REJECTED",
  "WECHAT_UNAVAILABLE",
  "STORAGE_UNAVAILABLE",
  "STORAGE_CONFLICT",
  "BAD_BASE64",
  "BAD_IV_LENGTH",
  "DECRYPT_FAILED",
  "WATERMARK_MISMATCH",
  "USER_MISMATCH",
  "SIGNATURE_MISMATCH",
  "DATA_TOO_OLD",
  "SESSION_KEY_EXPIRED",
  "INVALID_PHONE_CODE",
  "RATE_LIMITED",
  "SUBSCRIBER_TOO_SLOW",
  "SHUTTING_DOWN",
  "CALLER_UNAUTHENTICATED",
  "CALLER_NOT_ALLOWED",
  "REQUEST_TOO_LARGE",
  "UNSUPPORTED_REQUEST",
  "DEADLINE_EXCEEDED",
] as const;

export type ErrorReason = (typeof ERROR_REASONS)[number];

/** The one error class of the domain; callers switch on `reason`. */
export class IdentityError extends Error {
  override readonly name = "IdentityError";

  constructor(
    readonly reason: ErrorReason,
    message: string,
    readonly metadata: Readonly<Record<string, string>> = {},
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }

  /** How long the caller should wait before trying again (sent as google.rpc.RetryInfo). */
  readonly retryAfterMs: number | undefined;
}

/** A request field that is missing or malformed; `field` uses the proto field name. */
export function invalidArgument(field: string, problem: string): IdentityError {
  return new IdentityError("INVALID_ARGUMENT", `${field}: ${problem}`, { field });
}

/**
 * WeChat refused the app access_token a server API call carried (errcodes 40001, 42001): another
 * service's forced refresh knocked it out, or it expired early. The caller replaces the token and
 * calls once more; if it escapes, it reads as WeChat being unavailable.
 */
export class AccessTokenRejectedError extends IdentityError {
  constructor(message: string, metadata: Readonly<Record<string, string>>) {
    super("WECHAT_UNAVAILABLE", message, metadata);
  }
}
