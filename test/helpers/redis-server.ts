import { type ChildProcess, spawn } from "node:child_process";
import { Redis } from "ioredis";
import { freePort } from "./redis-topologies.js";

/**
 * A Redis server of the test's own (the redis-server the real backends come with), so a test
 * can FLUSHALL or restart it without touching other suites' keys on the shared server.
 */
export async function startPrivateRedis() {
  const port = await freePort();
  let child: ChildProcess | undefined;

  async function ping(): Promise<boolean> {
    const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null });
    probe.on("error", () => {});
    try {
      await probe.connect();
      return (await probe.ping()) === "PONG";
    } catch {
      return false;
    } finally {
      probe.disconnect();
    }
  }

  async function start() {
    let failed: Error | undefined;
    child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: "ignore" },
    );
    child.once("error", (err) => {
      failed = err;
    });
    for (let i = 0; i < 100 && !failed && !(await ping()); i++) await new Promise((r) => setTimeout(r, 50));
    if (failed || !(await ping())) {
      throw new Error(
        `could not start redis-server on port ${port}: ${failed?.message ?? "no answer to PING"}`,
      );
    }
  }

  async function stop() {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill("SIGKILL");
    await exited;
  }

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    start,
    stop,
    /** Runs one command on a connection of its own. */
    async command(...args: [string, ...string[]]) {
      const client = new Redis({ port, host: "127.0.0.1" });
      try {
        return await client.call(...args);
      } finally {
        client.disconnect();
      }
    },
  };
}
