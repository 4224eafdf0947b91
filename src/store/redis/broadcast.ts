import type { Redis } from "ioredis";
import type { Broadcast } from "../../domain/ports.js";
import { connectRedis } from "./connection.js";

interface Subscription {
  onMessage: (message: string) => void;
  onGap: () => void;
}

/**
 * Broadcast on Redis pub/sub. Publishing uses the service's connection; subscribing needs one of
 * its own (a subscribed connection can run no other command), opened here with autoResubscribe
 * off: after a reconnect this code subscribes again itself and only then reports the gap, so a
 * reload started from onGap cannot miss a message published while the subscription was being
 * restored. Channels carry the deployment's prefix, like keys.
 */
export function createRedisBroadcast(
  publisher: Redis,
  options: { url: string; prefix: string; onError?: (err: Error) => void },
): Broadcast {
  const { prefix } = options;
  const subscriber = connectRedis(options.url, options.onError, {
    connectionName: `${prefix}broadcast`,
    autoResubscribe: false,
    enableAutoPipelining: false,
  });
  const subscriptions = new Map<string, Subscription[]>();
  let connectedBefore = false;

  subscriber.on("message", (channel: string, message: string) => {
    for (const s of subscriptions.get(channel) ?? []) s.onMessage(message);
  });
  subscriber.on("ready", () => {
    if (!connectedBefore) {
      connectedBefore = true;
      return;
    }
    const channels = [...subscriptions.keys()];
    if (channels.length === 0) return;
    subscriber.subscribe(...channels).then(
      () => {
        for (const list of subscriptions.values()) for (const s of list) s.onGap();
      },
      // The connection dropped again; its next "ready" tries again.
      () => {},
    );
  });

  return {
    async publish(topic, message) {
      await publisher.publish(prefix + topic, message);
    },
    async subscribe(topic, onMessage, onGap) {
      const channel = prefix + topic;
      const list = subscriptions.get(channel) ?? [];
      list.push({ onMessage, onGap });
      subscriptions.set(channel, list);
      await subscriber.subscribe(channel);
    },
    async close() {
      subscriptions.clear();
      subscriber.disconnect();
    },
  };
}
