import { connect as http2Connect } from "node:http2";
import {
  type AddressInfo,
  createServer as createNetServer,
  connect as netConnect,
  type Server,
} from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDualProtocolServer } from "../../src/transport/http/dual-protocol-server.js";

/** The HTTP port's protocol sniffing (src/transport/http-server.ts) over real sockets. */
describe("one cleartext port for HTTP/1.1 and h2c", () => {
  let dual: ReturnType<typeof createDualProtocolServer>;
  let port: number;
  beforeAll(async () => {
    dual = createDualProtocolServer((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`${req.httpVersion} ${req.url}`);
    });
    await new Promise<void>((resolve) => dual.server.listen(0, "127.0.0.1", resolve));
    port = (dual.server.address() as AddressInfo).port;
  });
  afterAll(() => {
    return dual.drain(0);
  });

  async function h2Requests(url: string, paths: string[]): Promise<string[]> {
    const session = http2Connect(url);
    try {
      const bodies: string[] = [];
      for (const path of paths) {
        const stream = session.request({ ":path": path });
        let body = "";
        stream.setEncoding("utf8");
        stream.on("data", (chunk: string) => {
          body += chunk;
        });
        await new Promise((resolve, reject) => stream.on("end", resolve).on("error", reject));
        bodies.push(body);
      }
      return bodies;
    } finally {
      session.close();
    }
  }

  it("serves HTTP/1.1 and h2c (prior knowledge) on the same port", async () => {
    expect(await (await fetch(`http://127.0.0.1:${port}/one`)).text()).toBe("1.1 /one");
    expect(await h2Requests(`http://127.0.0.1:${port}`, ["/a", "/b", "/c"])).toEqual([
      "2.0 /a",
      "2.0 /b",
      "2.0 /c",
    ]);
  });

  it("recognizes the HTTP/2 preface when it arrives a few bytes at a time", async () => {
    // A proxy that hands the server the client's first bytes in 5-byte pieces, one per write.
    let proxy: Server | undefined;
    try {
      proxy = createNetServer({ noDelay: true }, (client) => {
        const upstream = netConnect({ port, host: "127.0.0.1", noDelay: true });
        let first = true;
        client.on("data", async (chunk: Buffer) => {
          if (!first) return void upstream.write(chunk);
          first = false;
          client.pause();
          for (let at = 0; at < chunk.length; at += 5) {
            upstream.write(chunk.subarray(at, at + 5));
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
          client.resume();
        });
        upstream.pipe(client);
        client.on("close", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
      });
      await new Promise<void>((resolve) => proxy?.listen(0, "127.0.0.1", resolve));
      const proxyPort = (proxy.address() as AddressInfo).port;
      expect(await h2Requests(`http://127.0.0.1:${proxyPort}`, ["/slow", "/again"])).toEqual([
        "2.0 /slow",
        "2.0 /again",
      ]);
    } finally {
      proxy?.close();
    }
  });

  it("answers bytes that are neither protocol as HTTP/1.1 would (400), and keeps serving", async () => {
    const socket = netConnect({ port, host: "127.0.0.1" });
    const answer = await new Promise<string>((resolve) => {
      let text = "";
      socket.on("data", (chunk) => {
        text += chunk.toString();
      });
      socket.on("close", () => resolve(text));
      socket.write("PRI * garbage\r\n\r\n");
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(await (await fetch(`http://127.0.0.1:${port}/after`)).text()).toBe("1.1 /after");
  });
});
