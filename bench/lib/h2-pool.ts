import { type ClientHttp2Session, connect } from "node:http2";

/** A few HTTP/2 connections to one server, handed out in turn (the raw load clients share it). */
export function createH2Pool(baseUrl: string, sessions: number) {
  const pool: ClientHttp2Session[] = Array.from({ length: sessions }, () => connect(baseUrl));
  let turn = 0;
  return {
    next: () => pool[turn++ % pool.length] as ClientHttp2Session,
    close: () => {
      for (const session of pool) session.close();
    },
  };
}
