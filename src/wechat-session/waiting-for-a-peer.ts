/**
 * How instances wait for each other around WeChat calls: a duplicate of a code exchange, or an
 * instance needing the app access_token while another refreshes it, polls the key-value store.
 */

/** Between two looks at the store. */
export const PEER_POLL_INTERVAL_MS = 20;

/**
 * The longest wait for another instance's WeChat call: the call and its one retry (errcode -1),
 * each bounded by the client's timeout, plus a second for the store round trips. Past it, the
 * other instance is taken to be stuck or gone.
 */
export const peerWaitMs = (wechatTimeoutMs: number): number => wechatTimeoutMs * 2 + 1000;

export const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
