import { createHash } from "node:crypto";
import { IdentityError } from "../domain/errors.js";
import {
  type AppCredentials,
  type Clock,
  type Code2SessionResult,
  type KeyValueStore,
  type PhoneNumber,
  WECHAT_CODE_LIFETIME_MS,
  type WechatApi,
} from "../domain/ports.js";
import type { Sealer } from "../domain/sealing.js";
import { storageKeys } from "../domain/storage-keys.js";
import { PEER_POLL_INTERVAL_MS, pause, peerWaitMs } from "./waiting-for-a-peer.js";

/** The session a login attempt stores: decided by its first try, the same on every retry. */
export interface SessionPlan {
  sessionId: string;
  refreshToken: string;
  /** Epoch milliseconds. */
  createdAt: number;
  idleExpiresAt: number;
  absoluteExpiresAt: number;
  /** A phone login's number (WeChat's phone code is single-use too, so a retry reuses it). */
  phone?: PhoneNumber;
}

export interface LoginAttempt {
  /** WeChat's answer for the code. */
  session: Code2SessionResult;
  /** The plan an earlier try of this attempt stored, if any. */
  earlierPlan: SessionPlan | undefined;
  /**
   * The attempt's session: the one an earlier try planned, or else `make()`'s, kept with the
   * exchange so that every retry of this attempt stores and answers the same session. Login awaits
   * `remembered` next to its own writes, so that Redis gets them together.
   */
  planSession(make: () => SessionPlan): { plan: SessionPlan; remembered: Promise<void> };
}

/** What the key-value store holds for a code once WeChat has answered. */
interface StoredExchange {
  attemptId: string;
  session: Code2SessionResult;
  plan?: SessionPlan;
}

const PENDING = "pending:";

const codeUsed = () =>
  new IdentityError(
    "CODE_USED",
    "the login code was already used: call wx.login again (a retry must send the same attempt_id)",
  );

/**
 * Exchanges a wx.login code with WeChat at most once, across retries and instances, and keeps a
 * code one-time as WeChat means it to be: only a retry of the same attempt (the same attempt_id,
 * made by the client for this code) gets the same session back; anyone else presenting the code
 * gets CODE_USED, so a code seen in a log or by a proxy opens nothing.
 *
 * The first try claims the code in the key-value store; WeChat's answer (sealed: it holds the
 * session_key) and the session the try plans are kept for the code's lifetime. Tries of one
 * attempt in this process share one promise; on other instances they wait for the claimant. If
 * the claimant fails, the claim is dropped and a waiting try asks WeChat itself.
 */
export function createCodeExchange(deps: {
  wechat: WechatApi;
  kv: KeyValueStore;
  sealer: Sealer;
  clock: Clock;
  /** The WeChat client's timeout: a retry waits for another instance's exchange a little longer. */
  wechatTimeoutMs: number;
}) {
  const waitTimeoutMs = peerWaitMs(deps.wechatTimeoutMs);
  const inFlight = new Map<string, { attemptId: string; attempt: Promise<LoginAttempt> }>();

  /** An attempt whose plan is made once, by whichever try of it asks first. */
  function attemptOf(
    key: string,
    attemptId: string,
    session: Code2SessionResult,
    earlier: SessionPlan | undefined,
  ): LoginAttempt {
    let planned = earlier ? { plan: earlier, remembered: Promise.resolve() } : undefined;
    return {
      session,
      earlierPlan: earlier,
      planSession(make) {
        if (!planned) {
          const plan = make();
          const stored: StoredExchange = { attemptId, session, plan };
          // A remembered exchange need not outlive its code.
          const remembered = deps.kv.set(
            key,
            deps.sealer.seal(JSON.stringify(stored)),
            WECHAT_CODE_LIFETIME_MS,
          );
          planned = { plan, remembered };
        }
        return planned;
      },
    };
  }

  async function claimOrWait(
    key: string,
    app: AppCredentials,
    code: string,
    attemptId: string,
    call: { timeoutMs?: number },
  ): Promise<LoginAttempt> {
    const deadline = deps.clock.now() + waitTimeoutMs;
    for (;;) {
      if (await deps.kv.setIfAbsent(key, PENDING + attemptId, waitTimeoutMs)) {
        let session: Code2SessionResult;
        try {
          session = await deps.wechat.code2Session(app, code, call);
        } catch (err) {
          await deps.kv.delete(key).catch(() => {});
          throw err;
        }
        return attemptOf(key, attemptId, session, undefined);
      }
      const value = await deps.kv.get(key);
      if (value === null) continue; // the claimant failed and dropped its claim: claim again
      // Only a retry of the same attempt may have the code's session; an attempt names itself.
      if (attemptId === "") throw codeUsed();
      if (value.startsWith(PENDING)) {
        if (value !== PENDING + attemptId) throw codeUsed();
        if (deps.clock.now() > deadline) {
          // The claimant is stuck or gone: let WeChat decide about the code.
          return attemptOf(key, attemptId, await deps.wechat.code2Session(app, code, call), undefined);
        }
        await pause(PEER_POLL_INTERVAL_MS);
        continue;
      }
      const stored = JSON.parse(deps.sealer.open(value)) as StoredExchange;
      if (stored.attemptId !== attemptId) throw codeUsed();
      return attemptOf(key, attemptId, stored.session, stored.plan);
    }
  }

  return {
    /** The code's exchange for this attempt (`attemptId` "" : a client that sends none). */
    exchange(
      app: AppCredentials,
      code: string,
      attemptId: string,
      call: { timeoutMs?: number } = {},
    ): Promise<LoginAttempt> {
      // The store sees only a hash of the code, never the code itself.
      const key = storageKeys.codeExchange(app.appId, createHash("sha256").update(code).digest("base64url"));
      const running = inFlight.get(key);
      if (running) {
        return running.attemptId === attemptId && attemptId !== ""
          ? running.attempt
          : Promise.reject(codeUsed());
      }
      const attempt = claimOrWait(key, app, code, attemptId, call).finally(() => inFlight.delete(key));
      inFlight.set(key, { attemptId, attempt });
      return attempt;
    },
  };
}

export type CodeExchange = ReturnType<typeof createCodeExchange>;
