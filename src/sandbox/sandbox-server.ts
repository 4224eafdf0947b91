import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createWechatSandbox, type SandboxOptions, send, type WechatSandbox } from "./sandbox.js";

/** Runs a sandbox as its own HTTP server (tests, benchmarks); its base URL is WeChat's stand-in. */
export async function startSandboxServer(
  options: SandboxOptions & { port?: number; host?: string },
): Promise<{ sandbox: WechatSandbox; baseUrl: string; close(): Promise<void> }> {
  const sandbox = createWechatSandbox(options);
  const server: Server = createServer((req, res) => {
    void sandbox.handle(req, res, req.url ?? "/").then((served) => {
      if (!served) send(res, 404, { errcode: 404, errmsg: "not found" });
    });
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    sandbox,
    baseUrl: `http://${host}:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
