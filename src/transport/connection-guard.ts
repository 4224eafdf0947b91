import type { Socket } from "node:net";

/** What one port lets clients hold (config: MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS, ...). */
export interface ConnectionLimits {
  maxConnections: number;
  maxPerAddress: number;
  /** A connection that completes no request within this is closed (silent and slow clients). */
  firstRequestTimeoutMs: number;
}

/**
 * Caps the connections one port holds, overall and per client address, and closes connections
 * that complete no request in time: a few thousand silent sockets from one address must not use
 * up the process's file descriptors and lock everyone else out. One guard per port.
 */
export function createConnectionGuard(limits: ConnectionLimits) {
  const perAddress = new Map<string, number>();
  const firstRequestTimers = new Map<string, NodeJS.Timeout>();
  let open = 0;

  return {
    /**
     * Counts a new connection, or destroys it when its address or the port is at its cap; false
     * then. An admitted connection that is not `served()` within the timeout is destroyed.
     */
    admit(socket: Socket): boolean {
      const address = socket.remoteAddress ?? "";
      const held = perAddress.get(address) ?? 0;
      if (open >= limits.maxConnections || held >= limits.maxPerAddress) {
        socket.destroy();
        return false;
      }
      open++;
      perAddress.set(address, held + 1);
      const key = connectionKey(socket);
      const timer = setTimeout(() => socket.destroy(), limits.firstRequestTimeoutMs);
      timer.unref();
      firstRequestTimers.set(key, timer);
      socket.once("close", () => {
        clearTimeout(timer);
        firstRequestTimers.delete(key);
        open--;
        const left = (perAddress.get(address) ?? 1) - 1;
        if (left === 0) perAddress.delete(address);
        else perAddress.set(address, left);
      });
      return true;
    },
    /**
     * The connection completed a request: it is no longer held to the first-request timeout. Takes
     * the socket or what stands for it (an http2 session's socket proxy has the same address and port).
     */
    served(socket: Pick<Socket, "remoteAddress" | "remotePort"> | null | undefined): void {
      if (!socket) return;
      const key = connectionKey(socket);
      const timer = firstRequestTimers.get(key);
      if (timer) {
        clearTimeout(timer);
        firstRequestTimers.delete(key);
      }
    },
  };
}

const connectionKey = (socket: Pick<Socket, "remoteAddress" | "remotePort">) =>
  `${socket.remoteAddress ?? ""}|${socket.remotePort ?? ""}`;

export type ConnectionGuard = ReturnType<typeof createConnectionGuard>;
