/**
 * A minimal structured logger: one JSON object per line on stdout. Callers pass fields, never
 * whole requests, so secrets cannot slip in by accident.
 */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): Logger {
  const at =
    (lineLevel: Exclude<LogLevel, "silent">) => (message: string, fields?: Record<string, unknown>) => {
      if (RANK[lineLevel] < RANK[level]) return;
      write(JSON.stringify({ time: new Date().toISOString(), level: lineLevel, msg: message, ...fields }));
    };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/**
 * What a log line may say about an error: its name and code (or an IdentityError's reason), never
 * its message, which can carry query parameters, URLs with secrets, or sealed values.
 */
export function errorSummary(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const reason = (err as { reason?: unknown }).reason;
  if (typeof reason === "string") return reason;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" ? `${err.name}:${code}` : err.name;
}
