import { type ClientHttp2Session, connect } from "node:http2";

/**
 * A few HTTP/2 connections to one server, handed out in turn (the raw load clients share it).
 * Each is opened when first needed and opened again once closed, as real clients do: the
 * service closes a connection that makes no request within its first-request timeout, or one
 * idle past CONNECTION_IDLE_TIMEOUT.
 */
export function createH2Pool(baseUrl: string, sessions: number) {
  const pool: Array<ClientHttp2Session | undefined> = Array.from({ length: sessions });
  let turn = 0;
  return {
    next(): ClientHttp2Session {
      const slot = turn++ % pool.length;
      let session = pool[slot];
      if (!session || session.closed || session.destroyed) {
        session = connect(baseUrl);
        // A refused or reset connection fails the calls on it; the next call opens another.
        session.on("error", () => {});
        pool[slot] = session;
      }
      return session;
    },
    close: () => {
      for (const session of pool) session?.close();
    },
  };
}
