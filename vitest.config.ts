import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // A Redis Cluster and a Sentinel set for the contract suites, when redis-server is installed.
    globalSetup: ["test/setup/shared-redis-topologies.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // The gRPC thread's module is loaded by Node itself, in a worker thread: each test process
    // registers a TypeScript loader, and its worker threads inherit it.
    execArgv: ["--import", fileURLToPath(new URL("./test/helpers/typescript-loader.mjs", import.meta.url))],
    // Timing is never asserted; retries would only hide real failures.
    retry: 0,
  },
});
