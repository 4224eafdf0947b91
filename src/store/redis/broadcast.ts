import type { RedisTopology } from "../../config.js";
import type { Broadcast } from "../../domain/ports.js";
import { connectRedis, type RedisClient } from "./connection.js";

interface Subscription {
  onMessage: (message: string) => void;
  onGap: () => void;
}

/**
 * Broadcast on Redis pub/sub. Publishing uses the service's connection; subscribing needs one of
 * its own (a subscribed connection can run no other command). Channels carry the deployment's
 * prefix, like keys.
 *
 * One node or a Sentinel-managed master: plain PUBLISH / SUBSCRIBE, on a connection opened with
 * autoResubscribe off: after a reconnect this code subscribes again itself and only then reports
 * the gap, so a reload started from onGap cannot miss a message published while the subscription
 * was being restored.
 *
 * A Cluster: sharded pub/sub (SPUBLISH / SSUBSCRIBE). A plain PUBLISH goes to whichever node the
 * client picks and spreads over the cluster bus from there, so two messages published in a row
 * arrived out of order (the broadcast contract suite, on a 3-master cluster); a channel's sharded
 * messages all go through the master of its slot, in order. ioredis keeps a subscriber per master
 * and subscribes again after a failover; the gap is reported once it has.
 */
export function createRedisBroadcast(
  publisher: RedisClient,
  options: { topology: RedisTopology; prefix: string; onError?: (err: Error) => void },
): Broadcast {
  const { prefix } = options;
  const sharded = options.topology.kind === "cluster";
  const subscriber = connectRedis(options.topology, options.onError, {
    connectionName: `${prefix}broadcast`,
    autoResubscribe: sharded,
    enableAutoPipelining: false,
    shardedSubscribers: sharded,
  });
  const subscriptions = new Map<string, Subscription[]>();
  const deliver = (channel: string, message: string) => {
    for (const s of subscriptions.get(channel) ?? []) s.onMessage(message);
  };
  const reportGap = () => {
    for (const list of subscriptions.values()) for (const s of list) s.onGap();
  };

  if (sharded) {
    subscriber.on("smessage", deliver);
    // A subscriber lost (its master failed), then all of them subscribed again: a gap.
    let lost = false;
    subscriber.on("-subscriber", () => {
      lost = true;
    });
    subscriber.on("subscribersReady", () => {
      if (!lost) return;
      lost = false;
      reportGap();
    });
  } else {
    subscriber.on("message", deliver);
    let connectedBefore = false;
    subscriber.on("ready", () => {
      if (!connectedBefore) {
        connectedBefore = true;
        return;
      }
      const channels = [...subscriptions.keys()];
      if (channels.length === 0) return;
      // The connection dropped again if this fails; its next "ready" tries again.
      subscriber.subscribe(...channels).then(reportGap, () => {});
    });
  }

  return {
    async publish(topic, message) {
      if (sharded) await publisher.spublish(prefix + topic, message);
      else await publisher.publish(prefix + topic, message);
    },
    async subscribe(topic, onMessage, onGap) {
      const channel = prefix + topic;
      const list = subscriptions.get(channel) ?? [];
      list.push({ onMessage, onGap });
      subscriptions.set(channel, list);
      if (sharded) await subscriber.ssubscribe(channel);
      else await subscriber.subscribe(channel);
    },
    async close() {
      subscriptions.clear();
      subscriber.disconnect();
    },
  };
}
