import type { TestProject } from "vitest/node";
import type { RedisTopology } from "../../src/config.js";
import { hasRedisServer, startRedisCluster, startRedisSentinelSet } from "../helpers/redis-topologies.js";

/**
 * One Redis Cluster (3 masters, no replicas) and one Sentinel set for the whole run, shared by
 * the contract suites (each uses keys and channels of its own prefix). Failover tests start
 * their own, since they kill a master.
 */
export default async function setup(project: TestProject) {
  if (!hasRedisServer) {
    project.provide("redisTopologies", []);
    return;
  }
  const [cluster, sentinel] = await Promise.all([
    startRedisCluster({ replicas: 0 }),
    startRedisSentinelSet(),
  ]);
  project.provide("redisTopologies", [
    { name: "Redis Cluster", topology: cluster.topology },
    { name: "Redis Sentinel", topology: sentinel.topology },
  ]);
  return async () => {
    await Promise.all([cluster.stop(), sentinel.stop()]);
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    redisTopologies: Array<{ name: string; topology: RedisTopology }>;
  }
}
