import type {
  AuditNote,
  Broadcast,
  Clock,
  RevokedSession,
  SessionStore,
  SessionTarget,
} from "../domain/ports.js";
import { topics } from "../domain/storage-keys.js";
import type { Logger } from "../observability/logger.js";
import { errorSummary } from "../util/error-summary.js";
import { createWatchers } from "../util/watchers.js";
import { createRevocationMirror, type RevocationEntry } from "./revocation-mirror.js";

/** The safety net behind pub/sub: every known revocation is reloaded this often. */
export const REVOCATION_RESYNC_INTERVAL_MS = 5 * 60_000;

/**
 * Between resyncs, the revocations of the last moments are read from Postgres this often, so a
 * Logout reaches every instance within about this long even while Redis (pub/sub) is down. The
 * query reads the partial index on revoked_at: a few rows, once a second per instance.
 */
export const REVOCATION_POLL_INTERVAL_MS = 1000;
/**
 * How far back each poll looks: its interval plus room for a revoking instance's clock running
 * behind and for a revocation committed a while after its revoked_at was taken (a statement
 * runs at most DATABASE_STATEMENT_TIMEOUT, 5 s by default).
 */
const REVOCATION_POLL_WINDOW_MS = 10_000;

const entries = (sessions: readonly RevokedSession[]): RevocationEntry[] =>
  sessions.map((s) =>
    s.staleBefore
      ? [s.id, s.forgetAfter.getTime(), s.staleBefore.getTime()]
      : [s.id, s.forgetAfter.getTime()],
  );

/**
 * Revoked sessions, as every instance sees them. A revocation is written to Postgres first (the
 * source of truth), then added to this instance's in-memory mirror and published to the other
 * instances' mirrors, so VerifyToken checks revocation with one map lookup and no I/O.
 *
 * The mirror is loaded from Postgres at start (after subscribing, so nothing falls in between),
 * reloaded when the broadcast reports a gap (a Redis disconnect), and every few minutes in case
 * a publish failed. Revocations are never undone, so a reload only adds. An entry is forgotten
 * once every access token its session could have issued has expired anyway.
 */
export function createRevocations(deps: {
  sessions: SessionStore;
  broadcast: Broadcast;
  clock: Clock;
  log: Logger;
  maxAccessTokenTtlMs: number;
  /**
   * Hears, per session revoked elsewhere and first learned of by broadcast, the seconds since it
   * was revoked (read from the entry: its forget-after less the access-token lifetime, or its
   * stale-before), so instances' clocks and lifetimes are assumed alike.
   */
  observeLag?: (seconds: number) => void;
}) {
  const mirror = createRevocationMirror(deps.clock);
  const watchers = createWatchers<RevocationEntry[]>();

  function add(batch: readonly RevocationEntry[]): RevocationEntry[] {
    // A reload brings back every known revocation: watchers hear only of the new ones.
    const added = mirror.add(batch);
    if (added.length > 0) watchers.notify(added);
    return added;
  }

  async function reload() {
    add(entries(await deps.sessions.listRevokedSince(new Date(deps.clock.now() - deps.maxAccessTokenTtlMs))));
    mirror.forgetExpired();
  }

  const reloadInBackground = (why: string) => () => {
    reload().catch((err: unknown) =>
      deps.log.warn("revocations could not be reloaded; retrying at the next resync", {
        why,
        error: errorSummary(err),
      }),
    );
  };

  function receive(message: string) {
    const batch = decode(message);
    if (!batch) return deps.log.warn("ignored a malformed revocation message");
    const added = add(batch);
    if (deps.observeLag) {
      const now = deps.clock.now();
      for (const [, forgetAfterMs, staleBeforeMs] of added) {
        const revokedAt = staleBeforeMs ?? forgetAfterMs - deps.maxAccessTokenTtlMs;
        deps.observeLag(Math.max(0, now - revokedAt) / 1000);
      }
    }
  }

  let timer: NodeJS.Timeout | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  let polling = false;
  let pollFailing = false;
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      add(
        entries(await deps.sessions.listRevokedSince(new Date(deps.clock.now() - REVOCATION_POLL_WINDOW_MS))),
      );
      pollFailing = false;
    } catch (err) {
      // Once per outage: the store's own errors tell the rest.
      if (!pollFailing)
        deps.log.warn("recent revocations could not be read; polling on", { error: errorSummary(err) });
      pollFailing = true;
    } finally {
      polling = false;
    }
  }

  return {
    /** The hot path: is an access token of this session, issued then, refused (ended or out of date)? */
    refusal: mirror.refusal,

    /** The ended sessions as [sessionId, forgetAfterMs] entries (what the gRPC thread starts from). */
    entries: mirror.entries,

    /** Calls `watch` with every batch of newly ended sessions from now on; returns the stop. */
    watch: watchers.watch,

    get size() {
      return mirror.size;
    },

    async start(): Promise<void> {
      await deps.broadcast.subscribe(
        topics.revocations,
        receive,
        reloadInBackground("broadcast reconnected"),
      );
      await reload();
      timer = setInterval(reloadInBackground("periodic resync"), REVOCATION_RESYNC_INTERVAL_MS);
      timer.unref();
      pollTimer = setInterval(() => void poll(), REVOCATION_POLL_INTERVAL_MS);
      pollTimer.unref();
    },

    /**
     * Ends sessions durably, then everywhere: here at once, on the other instances as soon as
     * they receive the message. Returns how many sessions this call ended.
     */
    async revoke(
      target: SessionTarget,
      options: { everySessionOfUser: boolean; reason: string; audit?: AuditNote },
    ): Promise<number> {
      return spread(await deps.sessions.revoke(target, { ...options, now: new Date(deps.clock.now()) }));
    },

    spread,

    stop(): void {
      clearInterval(timer);
      clearInterval(pollTimer);
    },
  };

  /**
   * Makes sessions already ended (or marked out of date) in Postgres known everywhere: here at
   * once, on the other instances as soon as they receive the message. Returns how many.
   */
  async function spread(ended: readonly RevokedSession[]): Promise<number> {
    if (ended.length === 0) return 0;
    const batch = entries(ended);
    add(batch);
    try {
      // The message: [[sessionId, forgetAfterMs, staleBeforeMs?], ...].
      await deps.broadcast.publish(topics.revocations, JSON.stringify(batch));
    } catch (err) {
      // Durable already; the other instances see it at their next reload.
      deps.log.warn("a revocation could not be published; other instances see it at their next resync", {
        sessions: ended.length,
        error: errorSummary(err),
      });
    }
    return ended.length;
  }
}

export type Revocations = ReturnType<typeof createRevocations>;

/** A published message back into its entries; undefined when it is not [[string, number, number?], ...]. */
function decode(message: string): RevocationEntry[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  for (const entry of value) {
    if (
      !Array.isArray(entry) ||
      typeof entry[0] !== "string" ||
      typeof entry[1] !== "number" ||
      !(entry.length === 2 || (entry.length === 3 && typeof entry[2] === "number"))
    )
      return undefined;
  }
  return value as RevocationEntry[];
}
