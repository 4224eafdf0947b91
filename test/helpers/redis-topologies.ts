import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import type { RawEnv, RedisTopology } from "../../src/config.js";

/**
 * Real Redis Clusters and Sentinel sets on spare local ports, made of the redis-server the real
 * backends come with (redis-server --sentinel for the sentinels), for the contract suites and
 * the failover tests.
 */

export const hasRedisServer = spawnSync("redis-server", ["--version"]).status === 0;

const HOST = "127.0.0.1";

/** A port that is free, and (for a cluster node) whose bus port, 10000 above, is free too. */
export async function freePort(withBus = false): Promise<number> {
  for (;;) {
    const port = withBus ? 20000 + Math.floor(Math.random() * 20000) : 0;
    const taken = await listenable(port).then(
      (p) => p,
      () => null,
    );
    if (taken === null) continue;
    if (!withBus) return taken;
    if (
      await listenable(port + 10000).then(
        () => true,
        () => false,
      )
    )
      return port;
  }
}

async function listenable(port: number): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, HOST, resolve);
  });
  const bound = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return bound;
}

async function call(port: number, ...args: [string, ...string[]]): Promise<unknown> {
  const client = new Redis({ port, host: HOST, lazyConnect: true, retryStrategy: () => null });
  client.on("error", () => {});
  try {
    await client.connect();
    return await client.call(...args);
  } finally {
    client.disconnect();
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** redis-server processes of one topology, killed together at the end. */
function processes() {
  const running = new Map<number, ChildProcess>();
  return {
    start(port: number, args: string[]) {
      const child = spawn("redis-server", args, { stdio: "ignore" });
      running.set(port, child);
      return until(`redis-server on ${port}`, async () => (await call(port, "PING")) === "PONG");
    },
    async kill(port: number) {
      const child = running.get(port);
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    },
    async killAll() {
      await Promise.all([...running.keys()].map((port) => this.kill(port)));
    },
  };
}

export interface RedisSetup {
  topology: RedisTopology;
  /** The configuration that points the service at it (REDIS_URL unset). */
  env: RawEnv;
  /** Kills the master (of the first slots, for a cluster) and waits until a replica took over. */
  failOver(): Promise<void>;
  stop(): Promise<void>;
}

/** A Redis Cluster: `masters` masters, each with `replicas` replicas; nodes fail over after 1 s. */
export async function startRedisCluster(
  options: { masters?: number; replicas?: number } = {},
): Promise<RedisSetup> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  const dir = await mkdtemp(join(tmpdir(), "redis-cluster-"));
  const nodes = processes();
  const ports: number[] = [];
  for (let i = 0; i < masters * (1 + replicas); i++) ports.push(await freePort(true));
  await Promise.all(
    ports.map((port) =>
      nodes.start(port, [
        "--port",
        String(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir,
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        `nodes-${port}.conf`,
        "--cluster-node-timeout",
        "1000",
        // A replica takes over however long it was apart from its master.
        "--cluster-replica-validity-factor",
        "0",
      ]),
    ),
  );
  const created = spawnSync(
    "redis-cli",
    [
      "--cluster",
      "create",
      ...ports.map((p) => `${HOST}:${p}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ],
    { encoding: "utf8" },
  );
  if (created.status !== 0)
    throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
  const healthy = async () => {
    for (const port of ports) {
      if (!String(await call(port, "CLUSTER", "INFO").catch(() => "")).includes("cluster_state:ok")) continue;
      return true;
    }
    return false;
  };
  await until("the cluster to be ok", async () =>
    (await Promise.all(ports.map((p) => call(p, "CLUSTER", "INFO")))).every((info) =>
      String(info).includes("cluster_state:ok"),
    ),
  );

  /** The port of the master serving slot 0, from a node that is up. */
  const masterOfSlotZero = async (): Promise<number> => {
    for (const port of ports) {
      const slots = (await call(port, "CLUSTER", "SLOTS").catch(() => null)) as Array<
        [number, number, [string, number]]
      > | null;
      const owner = slots?.find(([from]) => from === 0);
      if (owner) return owner[2][1];
    }
    throw new Error("no node answers CLUSTER SLOTS");
  };

  const addresses = ports.map((port) => ({ host: HOST, port }));
  return {
    topology: { kind: "cluster", nodes: addresses, password: undefined },
    env: { REDIS_URL: undefined, REDIS_CLUSTER_NODES: addresses.map((a) => `${a.host}:${a.port}`).join(",") },
    async failOver() {
      const master = await masterOfSlotZero();
      await nodes.kill(master);
      await until(
        "a replica to take over slot 0",
        async () => (await masterOfSlotZero()) !== master && (await healthy()),
      );
    },
    async stop() {
      await nodes.killAll();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A master, one replica and three sentinels (quorum 2) watching it as "mymaster". */
export async function startRedisSentinelSet(): Promise<RedisSetup> {
  const dir = await mkdtemp(join(tmpdir(), "redis-sentinel-"));
  const servers = processes();
  const [master, replica] = [await freePort(), await freePort()] as [number, number];
  const common = ["--bind", HOST, "--save", "", "--appendonly", "no", "--dir", dir];
  await servers.start(master, ["--port", String(master), ...common]);
  await servers.start(replica, ["--port", String(replica), ...common, "--replicaof", HOST, String(master)]);
  const sentinels: number[] = [];
  for (let i = 0; i < 3; i++) sentinels.push(await freePort());
  await Promise.all(
    sentinels.map(async (port) => {
      // Sentinel rewrites its configuration file: one of its own, in the temporary folder.
      const file = join(dir, `sentinel-${port}.conf`);
      await writeFile(
        file,
        [
          `port ${port}`,
          `bind ${HOST}`,
          `sentinel monitor mymaster ${HOST} ${master} 2`,
          "sentinel down-after-milliseconds mymaster 1000",
          "sentinel failover-timeout mymaster 3000",
          "",
        ].join("\n"),
      );
      await servers.start(port, [file, "--sentinel"]);
    }),
  );
  const masterPort = async () =>
    Number(
      (
        (await call(sentinels[0] as number, "SENTINEL", "get-master-addr-by-name", "mymaster")) as string[]
      )[1],
    );
  // A failover needs the sentinels to know the replica and each other (their hellos, every 2 s).
  await until("the sentinels to see the replica and each other", async () => {
    const info = (await call(sentinels[0] as number, "SENTINEL", "master", "mymaster")) as string[];
    const field = (name: string) => Number(info[info.indexOf(name) + 1]);
    return field("num-slaves") >= 1 && field("num-other-sentinels") >= 2;
  });
  await until("the replica to be in sync", async () =>
    String(await call(replica, "INFO", "replication")).includes("master_link_status:up"),
  );

  const addresses = sentinels.map((port) => ({ host: HOST, port }));
  return {
    topology: { kind: "sentinel", sentinels: addresses, master: "mymaster", password: undefined },
    env: {
      REDIS_URL: undefined,
      REDIS_SENTINELS: addresses.map((a) => `${a.host}:${a.port}`).join(","),
      REDIS_SENTINEL_MASTER: "mymaster",
    },
    async failOver() {
      const old = await masterPort();
      await servers.kill(old);
      await until("the sentinels to promote the replica", async () => (await masterPort()) !== old);
    },
    async stop() {
      await servers.killAll();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
