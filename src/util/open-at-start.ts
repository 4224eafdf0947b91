import { setTimeout } from "node:timers/promises";
import type { Logger } from "../observability/logger.js";
import { errorSummary } from "./error-summary.js";

/** "postgres://user:secret@db:5432/identity" -> "postgres://db:5432/identity": never a password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === "/" ? "" : u.pathname}`;
  } catch {
    return "an unparsable URL";
  }
}

/** Waits between tries: 250 ms, doubling, at most 5 s. */
const FIRST_WAIT_MS = 250;
const LONGEST_WAIT_MS = 5000;

/**
 * Opens a dependency at start, trying again with backoff while it does not answer (a database
 * container that starts after ours), for `timeoutMs` at most. Each failure is logged naming the
 * dependency (`what`, e.g. "Postgres at postgres://db:5432/identity"); the last one is thrown
 * with that name, so the exit says which dependency was missing.
 */
export async function openAtStart<T>(
  what: string,
  open: () => Promise<T>,
  options: {
    timeoutMs: number;
    log: Logger;
    /** Failures worth waiting out (default: all); anything else is thrown at once. */
    retryable?: (err: unknown) => boolean;
    now?: () => number;
  },
): Promise<T> {
  const now = options.now ?? Date.now;
  const giveUpAt = now() + options.timeoutMs;
  for (let attempt = 1, waitMs = FIRST_WAIT_MS; ; attempt++, waitMs = Math.min(waitMs * 2, LONGEST_WAIT_MS)) {
    try {
      return await open();
    } catch (err) {
      const summary = errorSummary(err) ?? "no error text";
      if (options.retryable?.(err) === false) throw new Error(`${what} failed: ${summary}`);
      const left = giveUpAt - now();
      if (left <= 0) throw new Error(`${what} not answering after ${attempt} tries: ${summary}`);
      const retryInMs = Math.min(waitMs, left);
      options.log.warn(`${what} not answering; trying again`, { attempt, retryInMs, error: summary });
      await setTimeout(retryInMs);
    }
  }
}
