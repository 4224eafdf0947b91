import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from "node:http";
import {
  createSecureServer as createHttp2SecureServer,
  createServer as createHttp2Server,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from "node:http2";
import { createServer as createNetServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { ConnectionGuard } from "../connection-guard.js";
import type { TlsMaterial } from "../tls.js";

export type RequestHandler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * One port for HTTP/1.1 and HTTP/2. With TLS, Node's secure http2 server picks by ALPN and falls
 * back to HTTP/1.1 itself. In cleartext (h2c with prior knowledge), Node's http2 server does not fall
 * back to HTTP/1.1 without TLS, so each connection's first bytes are read: the HTTP/2 preface
 * goes to the http2 server, anything else to the http1 server. Either way the bytes are put back
 * with unshift() and the socket itself is handed over: an http2 session reads what is buffered on
 * the socket first (nodejs/node#41185, in every Node we support) and then keeps to the native
 * handle. A wrapping JS stream, as before, added a write and a read hop to every frame.
 */
export function createDualProtocolServer(
  handler: RequestHandler,
  options: {
    /** Caps connections and closes those that complete no request in time; none: unguarded. */
    guard?: ConnectionGuard;
    /** An HTTP/2 connection without streams this long gets GOAWAY. */
    idleTimeoutMs?: number;
    /** TLS (and with a client CA, mTLS) instead of cleartext. */
    tls?: TlsMaterial | null;
  } = {},
): {
  server: Server;
  /**
   * Stops accepting, lets requests in flight finish (HTTP/2: GOAWAY; HTTP/1.1: the connection
   * closes after its response), then cuts whatever is still open after `timeoutMs`.
   */
  drain(timeoutMs: number): Promise<void>;
} {
  const { guard } = options;
  const http1 = createHttp1Server(handler as (req: IncomingMessage, res: ServerResponse) => void);
  http1.keepAliveTimeout = 65_000;
  const http2Handler = handler as (req: Http2ServerRequest, res: Http2ServerResponse) => void;
  const secure = options.tls ? createSecureServer(options.tls, http2Handler) : undefined;
  const http2 = createHttp2Server(http2Handler);
  const sockets = new Set<Socket>();
  let draining = false;

  // HTTP/2 (h2c, or h2 by ALPN): each session is drained with GOAWAY, closed when idle, and
  // tells the guard once, when its first stream is done. The session's socket is a proxy, gone
  // with the session when the stream closes: the address and port the guard keys connections by
  // are taken now.
  const sessions = new Set<ServerHttp2Session>();
  const onSession = (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (draining) session.close();
    if (options.idleTimeoutMs) session.setTimeout(options.idleTimeoutMs, () => session.close());
    if (guard) {
      const peer = { remoteAddress: session.socket.remoteAddress, remotePort: session.socket.remotePort };
      session.once("stream", (stream) => stream.once("close", () => guard.served(peer)));
    }
  };
  http2.on("session", onSession);
  secure?.on("session", onSession);

  // HTTP/1.1 (cleartext, or TLS without h2): a drain waits for a connection's requests in
  // flight, and the guard hears of its first finished request.
  const http1InFlight = new Map<Duplex, number>();
  const onHttp1Request = (
    req: IncomingMessage | Http2ServerRequest,
    res: ServerResponse | Http2ServerResponse,
  ) => {
    if (req.httpVersionMajor !== 1) return;
    // Taken now: once the response is done, a closing connection's request lets go of its socket.
    const socket = req.socket as Duplex & Pick<Socket, "remoteAddress" | "remotePort">;
    const inFlight = http1InFlight.get(socket);
    if (inFlight === undefined) {
      socket.once("close", () => http1InFlight.delete(socket));
      if (guard) res.once("finish", () => guard.served(socket));
    }
    http1InFlight.set(socket, (inFlight ?? 0) + 1);
    if (draining) res.setHeader("connection", "close");
    res.once("close", () => {
      const left = (http1InFlight.get(socket) ?? 1) - 1;
      http1InFlight.set(socket, left);
      if (draining && left === 0) socket.end();
    });
  };
  http1.on("request", onHttp1Request);
  secure?.on("request", onHttp1Request);

  // No Nagle: a small response written behind another unacknowledged one would otherwise wait
  // for the client's delayed ACK (http.createServer does the same by default; net does not).
  const server = createNetServer({ noDelay: true }, (socket) => {
    if (guard && !guard.admit(socket)) return;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("error", () => socket.destroy());
    if (secure) {
      secure.emit("connection", socket);
      return;
    }
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const decided =
        received.length >= HTTP2_PREFACE.length ||
        !HTTP2_PREFACE.subarray(0, received.length).equals(received);
      if (!decided) return;
      socket.off("data", onData);
      socket.pause();
      socket.unshift(received);
      if (received.subarray(0, HTTP2_PREFACE.length).equals(HTTP2_PREFACE)) {
        http2.emit("connection", socket);
      } else {
        http1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  });

  return {
    server,
    async drain(timeoutMs) {
      draining = true;
      server.close();
      for (const session of sessions) session.close();
      for (const [socket, inFlight] of http1InFlight) if (inFlight === 0) socket.end();
      // Connections that never sent a byte have nothing to finish.
      for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy();
      const closed = new Promise<void>((resolve) => {
        const check = () => (sockets.size === 0 ? resolve() : undefined);
        for (const socket of sockets) socket.once("close", check);
        check();
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
    },
  };
}

function createSecureServer(
  tls: TlsMaterial,
  handler: (req: Http2ServerRequest, res: Http2ServerResponse) => void,
): Http2SecureServer {
  const server = createHttp2SecureServer(
    {
      allowHTTP1: true,
      cert: tls.cert,
      key: tls.key,
      // Asked for and verified, not required: /healthz and the JWKS stay open to a probe without
      // one, and the service's calls need a verified certificate or a caller key (caller-auth.ts).
      ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
    },
    handler,
  );
  // Its HTTP/1.1 fallback reads this as the cleartext http1 server does (unset: no idle limit).
  Object.assign(server, { keepAliveTimeout: 65_000 });
  return server;
}
