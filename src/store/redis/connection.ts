import { Cluster, Redis, type RedisOptions } from "ioredis";
import type { RedisTopology } from "../../config.js";

/** A connection to the shared Redis, whichever its topology: the commands the stores use are the same. */
export type RedisClient = Redis | Cluster;

type ConnectionOptions = Pick<RedisOptions, "connectionName" | "autoResubscribe" | "enableAutoPipelining"> & {
  /** A Cluster's sharded pub/sub subscribers (one per master); ignored elsewhere. */
  shardedSubscribers?: boolean;
};

/** Fail fast: during an outage a command errors within about a second instead of after 20 retries. */
const FAIL_FAST = {
  maxRetriesPerRequest: 1,
  commandTimeout: 2000,
  connectTimeout: 2000,
} satisfies RedisOptions;

/**
 * A Redis client tuned to fail fast (the service answers UNAVAILABLE) on one node (REDIS_URL), a
 * master found through Sentinel (which follows a failover: ioredis asks the sentinels again and
 * watches their +switch-master), or a Cluster (keys spread over its masters by hash slot; a
 * failover moves the slots to a promoted replica and ioredis follows the MOVED answers).
 */
export function connectRedis(
  topology: RedisTopology,
  onError: (err: Error) => void = () => {},
  options: ConnectionOptions = {},
): RedisClient {
  const retryStrategy = (attempt: number) => Math.min(attempt * 100, 2000);
  const { shardedSubscribers, ...connection } = options;
  const single: RedisOptions = {
    lazyConnect: true,
    enableAutoPipelining: true,
    ...FAIL_FAST,
    retryStrategy,
    ...connection,
  };
  let client: RedisClient;
  switch (topology.kind) {
    case "node":
      client = new Redis(topology.url, single);
      break;
    case "sentinel":
      client = new Redis({
        ...single,
        sentinels: topology.sentinels,
        name: topology.master,
        password: topology.password,
        failoverDetector: true,
      });
      break;
    case "cluster":
      client = new Cluster(topology.nodes, {
        lazyConnect: true,
        enableAutoPipelining: connection.enableAutoPipelining ?? true,
        shardedSubscribers: shardedSubscribers ?? false,
        clusterRetryStrategy: retryStrategy,
        // A promoted replica takes its slots within about a second (cluster-node-timeout).
        retryDelayOnFailover: 200,
        retryDelayOnClusterDown: 200,
        slotsRefreshTimeout: 2000,
        redisOptions: { ...FAIL_FAST, ...connection, password: topology.password },
      });
      break;
  }
  // Without a listener ioredis prints every reconnect failure; the caller decides what to log.
  client.on("error", onError);
  return client;
}

/** Where Redis is, for log lines and errors: hosts and ports, never a password. */
export function describeRedis(topology: RedisTopology): string {
  const list = (nodes: Array<{ host: string; port: number }>) =>
    nodes.map((n) => `${n.host}:${n.port}`).join(",");
  switch (topology.kind) {
    case "node": {
      const url = new URL(topology.url);
      return `Redis at ${url.protocol}//${url.host}`;
    }
    case "sentinel":
      return `Redis master "${topology.master}" through Sentinel ${list(topology.sentinels)}`;
    case "cluster":
      return `Redis Cluster ${list(topology.nodes)}`;
  }
}
