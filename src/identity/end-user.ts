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
