import pino from "pino";

/**
 * The service's logger: pino, one JSON object per line on stdout (level, time, msg, fields).
 * Callers pass fields, never whole requests; the fields named in SECRET_FIELDS are redacted
 * wherever they appear, as a second line of defence.
 */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** Whether debug lines are written: a per-call line is built only then. */
  readonly debugEnabled: boolean;
}

/**
 * The one list of what never reaches a log line: a field of one of these names, at the top of a
 * line or one level down, is written as "[redacted]". Both spellings, as code and protos name them.
 */
export const SECRET_FIELDS = [
  "accessToken",
  "access_token",
  "refreshToken",
  "refresh_token",
  "token",
  "code",
  "phoneCode",
  "phone_code",
  "sessionKey",
  "session_key",
  "appSecret",
  "app_secret",
  "secret",
  "password",
  "key",
  "privateKey",
  "private_key",
  "keyEncryptionKey",
  "encryptedData",
  "encrypted_data",
  "iv",
  "authorization",
  "x-caller-key",
] as const;

const REDACTED_PATHS = SECRET_FIELDS.flatMap((name) => {
  const path = /^[A-Za-z_]\w*$/.test(name) ? name : `["${name}"]`;
  return [path, `*.${path}`.replace(".[", "[")];
});

/** Where lines go: stdout unless told (tests keep them). */
export interface LogDestination {
  write(line: string): void;
}

export function createLogger(level: LogLevel, destination?: LogDestination): Logger {
  const logger = pino(
    {
      level,
      base: undefined,
      messageKey: "msg",
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
  const at =
    (lineLevel: "debug" | "info" | "warn" | "error") => (message: string, fields?: Record<string, unknown>) =>
      fields ? logger[lineLevel](fields, message) : logger[lineLevel](message);
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    debugEnabled: logger.isLevelEnabled("debug"),
  };
}

/** What a log line may say about an error (in util/, since the clients' wire module uses it too). */
