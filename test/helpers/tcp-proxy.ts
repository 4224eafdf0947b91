import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy in front of a server, to take the server away and give it back without touching
 * it: cut() closes the listener and every connection through it (clients see their connections
 * reset, then connections refused), restore() listens again on the same port. stall() stops
 * passing on what the server sends, as a client that stopped reading would; flow() resumes.
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  const upstreams = new Set<Socket>();
  let stalled = false;
  const forward = (client: Socket) => {
    const upstream = connect(target.port, target.host);
    upstreams.add(upstream);
    upstream.once("close", () => upstreams.delete(upstream));
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
    client.pipe(upstream);
    // By hand rather than pipe(), so that nothing resumes a stalled upstream on a drain.
    upstream.on("data", (chunk: Buffer) => {
      if (!client.write(chunk)) {
        upstream.pause();
        client.once("drain", () => stalled || upstream.resume());
      }
    });
    if (stalled) upstream.pause();
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
  };
  const listen = (port: number) =>
    new Promise<Server>((resolve, reject) => {
      const server = createServer(forward);
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve(server));
    });
  let server = await listen(0);
  const { port } = server.address() as { port: number };
  return {
    port,
    async cut() {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
    async restore() {
      server = await listen(port);
    },
    stall() {
      stalled = true;
      for (const upstream of upstreams) upstream.pause();
    },
    flow() {
      stalled = false;
      for (const upstream of upstreams) upstream.resume();
    },
    close() {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}
