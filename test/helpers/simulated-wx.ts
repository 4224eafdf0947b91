import type { Wx, WxResponse } from "../../src/miniprogram/auth.js";

/**
 * A phone running the mini-program, as far as the SDK can tell: a `wx` whose login() asks the
 * WeChat sandbox for a code over HTTP (POST /login, as wx.login asks WeChat), whose request()
 * does real HTTP the way wx.request does (JSON in and out, every status a "success"), and whose
 * storage is a Map that outlives a relaunch.
 */
export interface SimulatedDevice {
  wx: Wx;
  storage: Map<string, unknown>;
  /** What the mini-program asked of wx: wx.login and wx.checkSession calls, "METHOD /path" of requests. */
  calls: { login: number; checkSession: number; requests: string[] };
  /** WeChat's session on this device lapsed: wx.checkSession fails. */
  wechatSessionExpired: boolean;
  /** The server handles the next request to `path`, but its answer never reaches the device. */
  loseNextAnswer(path: string): void;
  /** Runs `before` (awaited) just before the next request to `path` leaves the device. */
  beforeNextRequest(path: string, before: () => Promise<void>): void;
  requestsTo(path: string): number;
}

export function simulatedDevice(options: {
  sandboxUrl: string;
  appId: string;
  openid: string;
  /** Another launch of the same installation keeps its storage. */
  storage?: Map<string, unknown>;
}): SimulatedDevice {
  const storage = options.storage ?? new Map<string, unknown>();
  const calls = { login: 0, checkSession: 0, requests: [] as string[] };
  const lose = new Set<string>();
  const before = new Map<string, () => Promise<void>>();

  const device: SimulatedDevice = {
    storage,
    calls,
    wechatSessionExpired: false,
    loseNextAnswer: (path) => void lose.add(path),
    beforeNextRequest: (path, run) => void before.set(path, run),
    requestsTo: (path) => calls.requests.filter((r) => r.endsWith(` ${path}`)).length,
    wx: {
      login({ success, fail }) {
        calls.login++;
        fetch(`${options.sandboxUrl}/login`, {
          method: "POST",
          body: JSON.stringify({ appId: options.appId, openid: options.openid }),
        })
          .then(async (response) => success({ code: ((await response.json()) as { code: string }).code }))
          .catch((err: Error) => fail({ errMsg: `login:fail ${err.message}` }));
      },
      checkSession({ success, fail }) {
        calls.checkSession++;
        setImmediate(() => (device.wechatSessionExpired ? fail({ errMsg: "checkSession:fail" }) : success()));
      },
      request({ url, method = "GET", data, header = {}, timeout = 60_000, success, fail }) {
        const path = new URL(url).pathname;
        calls.requests.push(`${method} ${path}`);
        const hook = before.get(path);
        before.delete(path);
        const dropAnswer = lose.delete(path);
        void (async () => {
          await hook?.();
          const target = new URL(url);
          let body: string | undefined;
          const headers: Record<string, string> = { ...header };
          if (data !== undefined && (method === "GET" || method === "HEAD")) {
            // wx.request puts a GET's data into the query string.
            for (const [key, value] of Object.entries(data as Record<string, unknown>))
              target.searchParams.set(key, String(value));
          } else if (data !== undefined) {
            body = typeof data === "string" ? data : JSON.stringify(data);
            headers["content-type"] ??= "application/json";
          }
          const response = await fetch(target, {
            method,
            headers,
            body,
            signal: AbortSignal.timeout(timeout),
          });
          const text = await response.text();
          if (dropAnswer) throw new Error("timeout");
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text); // wx.request's default dataType "json"; raw text otherwise
          } catch {}
          const answer: WxResponse = {
            statusCode: response.status,
            data: parsed,
            header: Object.fromEntries(response.headers),
          };
          success(answer);
        })().catch((err: Error) => fail({ errMsg: `request:fail ${err.message}` }));
      },
      // wx storage keeps a serialized copy and answers "" for a key it does not hold.
      getStorageSync: (key) => (storage.has(key) ? structuredClone(storage.get(key)) : ""),
      setStorageSync: (key, value) => void storage.set(key, structuredClone(value)),
      removeStorageSync: (key) => void storage.delete(key),
    },
  };
  return device;
}
