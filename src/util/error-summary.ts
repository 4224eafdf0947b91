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
