import { IdentityError } from "../domain/errors.js";
import type { RateLimiter } from "../domain/ports.js";

/** The end user behind a call, as the BFF describes them (ClientInfo). */
export interface ClientInfo {
  ip: string;
  userAgent: string;
  deviceId: string;
}

export const NO_CLIENT_INFO: ClientInfo = Object.freeze({ ip: "", userAgent: "", deviceId: "" });

/**
 * The rate-limit keys of the end user behind a call: their address and device as the BFF passes
 * them; the caller's own address only when there is neither, so that a BFF serving thousands of
 * users is never throttled as one client.
 */
export function endUserKeys(client: ClientInfo, callerAddress: string | undefined): string[] {
  const keys: string[] = [];
  if (client.ip) keys.push(`ip:${client.ip}`);
  if (client.deviceId) keys.push(`device:${client.deviceId}`);
  if (keys.length === 0 && callerAddress) keys.push(`caller:${callerAddress}`);
  return keys;
}

/**
 * Runs `work` for an end user who still has failures left under `limiter` (RATE_LIMITED
 * otherwise, before any of the work), and counts a failure whose reason is in `counted` against
 * every key of theirs.
 */
export async function withFailureLimit<T>(
  limiter: RateLimiter,
  keys: readonly string[],
  counted: ReadonlySet<string>,
  work: () => Promise<T>,
): Promise<T> {
  await Promise.all(keys.map((key) => limiter.check(key)));
  try {
    return await work();
  } catch (err) {
    if (err instanceof IdentityError && counted.has(err.reason)) {
      await Promise.all(keys.map((key) => limiter.count(key).catch(() => {})));
    }
    throw err;
  }
}
