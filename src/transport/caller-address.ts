import { createContextKey } from "@connectrpc/connect";

/**
 * The caller's network address (no port), as a value of the handler context: rate limits fall
 * back to it when a Login carries no ClientInfo. Set by both transports; "" when unknown.
 */
export const callerAddressKey = createContextKey<string>("", { description: "the caller's address" });

/** "127.0.0.1:5555", "[::1]:5555", "ipv4:..." (grpc-js' peer strings) -> the address alone. */
export function addressOfPeer(peer: string | undefined): string {
  if (!peer) return "";
  const bare = peer.replace(/^ipv[46]:/, "");
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(bare);
  if (bracketed) return bracketed[1] as string;
  const parts = bare.split(":");
  return parts.length === 2 ? (parts[0] as string) : bare;
}
