import type { IdentityError } from "../domain/errors.js";
import type { AccountStore, Clock } from "../domain/ports.js";
import type { Logger } from "../observability/logger.js";
import { errorSummary } from "../util/error-summary.js";
import type { ClientInfo } from "./end-user.js";

/**
 * Writes failed logins to the audit log (login.failed, with the reason), for every way in. A
 * RATE_LIMITED refusal is not written: it is the cheap answer to a flood, and a row per refused
 * call would make the flood write to Postgres after all.
 */
export function createLoginFailureLog(deps: {
  accounts: Pick<AccountStore, "recordAudit">;
  clock: Clock;
  log: Logger;
}) {
  return async function recordLoginFailure(
    method: "wechat" | "phone" | "password",
    client: ClientInfo,
    err: IdentityError,
    details: Record<string, unknown>,
  ): Promise<void> {
    if (err.reason === "RATE_LIMITED") return;
    // The failure is the answer; a log that cannot take its row must not change it.
    await deps.accounts
      .recordAudit([
        {
          at: new Date(deps.clock.now()),
          type: "login.failed",
          actor: "anonymous",
          subjectUserId: null,
          ip: client.ip,
          userAgent: client.userAgent,
          details: { method, ...details, reason: err.reason },
        },
      ])
      .catch((error: unknown) =>
        deps.log.warn("a failed login was not audited", { error: errorSummary(error) }),
      );
  };
}

export type RecordLoginFailure = ReturnType<typeof createLoginFailureLog>;
