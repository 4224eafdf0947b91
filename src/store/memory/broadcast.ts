import type { Broadcast } from "../../domain/ports.js";

/**
 * Broadcast within this process: the embedded default, where this process is the only instance.
 * Messages are delivered asynchronously, as over Redis, and never go missing, so onGap never runs.
 */
export function createMemoryBroadcast(): Broadcast {
  const subscribers = new Map<string, Array<(message: string) => void>>();
  return {
    async publish(topic, message) {
      for (const onMessage of subscribers.get(topic) ?? []) queueMicrotask(() => onMessage(message));
    },
    async subscribe(topic, onMessage) {
      subscribers.set(topic, [...(subscribers.get(topic) ?? []), onMessage]);
    },
    async close() {
      subscribers.clear();
    },
  };
}
