import type { Broadcast } from "../domain/ports.js";
import { topics } from "../domain/storage-keys.js";
import type { Logger } from "../observability/logger.js";
import { errorSummary } from "../util/error-summary.js";
import type { KeyRing } from "./key-ring.js";

export const KEY_RELOAD_INTERVAL_MS = 60_000;

/**
 * Keeps an instance's key ring current: reloads every minute (which is also when a scheduled
 * rotation happens), at once when another instance or the rotation command announces a new key,
 * and after a broadcast gap. Returns the function that stops it.
 */
export async function keepKeyRingFresh(deps: {
  keyRing: KeyRing;
  broadcast: Broadcast;
  log: Logger;
}): Promise<() => void> {
  async function reloadNow(why: string) {
    let rotated: boolean;
    try {
      rotated = await deps.keyRing.load();
    } catch (err) {
      deps.log.warn("signing keys could not be reloaded; keeping the ones loaded", {
        why,
        error: errorSummary(err),
      });
      return;
    }
    if (!rotated) return;
    const next = deps.keyRing.keys().at(-1);
    deps.log.info("rotated the signing key on schedule", {
      kid: next?.kid,
      activatesAt: next?.activatesAt.toISOString(),
    });
    // The others would see it at their next reload anyway, well before it signs.
    await deps.broadcast.publish(topics.signingKeys, "rotated").catch((err: Error) =>
      deps.log.warn("a new signing key could not be announced; instances load it within a minute", {
        error: errorSummary(err),
      }),
    );
  }
  const reload = (why: string) => () => void reloadNow(why);
  await deps.broadcast.subscribe(
    topics.signingKeys,
    reload("a new key was announced"),
    reload("broadcast gap"),
  );
  const timer = setInterval(reload("periodic reload"), KEY_RELOAD_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
