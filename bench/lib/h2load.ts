import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AUTHORIZATION_HEADER } from "./caller.js";

/** h2load from Debian's nghttp2-client, installed on first use when apt-get is available. */
export function ensureH2load(): boolean {
  if (spawnSync("h2load", ["--version"]).status === 0) return true;
  console.log("installing h2load (nghttp2-client)...");
  spawnSync("apt-get", ["update", "-qq"], { stdio: "ignore" });
  spawnSync("apt-get", ["install", "-y", "-qq", "nghttp2-client"], { stdio: "ignore" });
  return spawnSync("h2load", ["--version"]).status === 0;
}

/** A gRPC request body: the 5-byte length prefix and the encoded message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(frame, 5);
  return frame;
}

export interface H2loadResult {
  perSecond: number;
  succeeded: number;
  failed: number;
  meanMs: number;
}

/** Drives a unary gRPC method with h2load: `clients` connections, `streams` in flight on each. */
export function h2loadGrpc(
  url: string,
  body: Buffer,
  requests: number,
  clients: number,
  streams: number,
): H2loadResult {
  return h2loadPost(url, body, requests, clients, streams, [
    "content-type: application/grpc",
    "te: trailers",
    AUTHORIZATION_HEADER,
  ]);
}

/** POSTs `body` with `headers` over h2c: `clients` connections, `streams` in flight on each. */
export function h2loadPost(
  url: string,
  body: Buffer,
  requests: number,
  clients: number,
  streams: number,
  headers: string[],
): H2loadResult {
  const file = join(tmpdir(), `h2load-body-${process.pid}.bin`);
  writeFileSync(file, body);
  // With BENCH_PIN=1 the load generator keeps to CPU 0 (servers are pinned to CPU 1).
  const command = process.env.BENCH_PIN === "1" ? ["taskset", "-c", "0", "h2load"] : ["h2load"];
  const out = execFileSync(
    command[0] as string,
    [
      ...command.slice(1),
      "-n",
      String(requests),
      "-c",
      String(clients),
      "-m",
      String(streams),
      "-t",
      "1",
      "-d",
      file,
      ...headers.flatMap((header) => ["-H", header]),
      url,
    ],
    { encoding: "utf8" },
  );
  const perSecond = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1]);
  const succeeded = Number(/(\d+) succeeded/.exec(out)?.[1]);
  const failed = Number(/(\d+) failed/.exec(out)?.[1]);
  const mean = /time for request:\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1] ?? "0ms";
  const meanMs = mean.endsWith("us")
    ? Number.parseFloat(mean) / 1000
    : mean.endsWith("ms")
      ? Number.parseFloat(mean)
      : Number.parseFloat(mean) * 1000;
  return { perSecond, succeeded, failed, meanMs };
}
