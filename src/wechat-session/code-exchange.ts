import { createHash } from "node:crypto";
import {
  type AppCredentials,
  type Clock,
  type Code2SessionResult,
  type KeyValueStore,
  WECHAT_CODE_LIFETIME_MS,
  type WechatApi,
} from "../domain/ports.js";
import type { Sealer } from "../domain/sealing.js";
import { storageKeys } from "../domain/storage-keys.js";
import { PEER_POLL_INTERVAL_MS, pause, peerWaitMs } from "./waiting-for-a-peer.js";

const PENDING = "pending";

export interface Exchanged {
  session: Code2SessionResult;
  /**
   * Settles once a retry of this code can find the result in the store. Login awaits it next to
   * its own writes rather than before them, so that Redis receives those commands together.
   */
  remembered: Promise<void>;
}

const alreadyStored = Promise.resolve();

/**
 * Exchanges a wx.login code with WeChat at most once, across retries and instances.
 *
 * A BFF that lost our response retries Login with the same code; WeChat would answer 40163 (code
 * used). So the first exchange claims the code in the key-value store, and its result (sealed: it
 * holds the session_key) is kept for the code's lifetime. Duplicates in this process share one
 * promise; duplicates on other instances wait for the claimant's result. If the claimant fails,
 * the claim is dropped and a waiting duplicate tries WeChat itself (and gets WeChat's answer).
 */
export function createCodeExchange(deps: {
  wechat: WechatApi;
  kv: KeyValueStore;
  sealer: Sealer;
  clock: Clock;
  /** The WeChat client's timeout: a duplicate waits for another instance's exchange a little longer. */
  wechatTimeoutMs: number;
}) {
  const waitTimeoutMs = peerWaitMs(deps.wechatTimeoutMs);
  const inFlight = new Map<string, Promise<Exchanged>>();

  async function claimOrWait(key: string, app: AppCredentials, code: string): Promise<Exchanged> {
    const deadline = deps.clock.now() + waitTimeoutMs;
    for (;;) {
      if (await deps.kv.setIfAbsent(key, PENDING, waitTimeoutMs)) {
        let result: Code2SessionResult;
        try {
          result = await deps.wechat.code2Session(app, code);
        } catch (err) {
          await deps.kv.delete(key).catch(() => {});
          throw err;
        }
        // A remembered exchange need not outlive its code.
        const remembered = deps.kv.set(
          key,
          deps.sealer.seal(JSON.stringify(result)),
          WECHAT_CODE_LIFETIME_MS,
        );
        return { session: result, remembered };
      }
      const value = await deps.kv.get(key);
      if (value !== null && value !== PENDING)
        return {
          session: JSON.parse(deps.sealer.open(value)) as Code2SessionResult,
          remembered: alreadyStored,
        };
      if (value === PENDING) {
        if (deps.clock.now() > deadline) {
          // The claimant is stuck or gone: let WeChat decide about the code.
          return { session: await deps.wechat.code2Session(app, code), remembered: alreadyStored };
        }
        await pause(PEER_POLL_INTERVAL_MS);
      }
      // value === null: the claimant failed and dropped its claim; try to claim again.
    }
  }

  return {
    exchange(app: AppCredentials, code: string): Promise<Exchanged> {
      // The store sees only a hash of the code, never the code itself.
      const key = storageKeys.codeExchange(app.appId, createHash("sha256").update(code).digest("base64url"));
      let pending = inFlight.get(key);
      if (!pending) {
        pending = claimOrWait(key, app, code).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      return pending;
    },
  };
}

export type CodeExchange = ReturnType<typeof createCodeExchange>;
