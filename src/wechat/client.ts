import { IdentityError } from "../domain/errors.js";
import type { AppCredentials, Code2SessionResult, WechatApi } from "../domain/ports.js";
import { code2SessionError, WECHAT_ERRCODES } from "./errcodes.js";

export interface WechatClientOptions {
  /**
   * https://api.weixin.qq.com in production; the sandbox's URL in tests and the embedded default
   * (a function there, since the sandbox's port is known only once the server listens).
   */
  baseUrl: string | (() => string);
  timeoutMs: number;
  /** Upper bound of the random pause before the one retry on errcode -1. */
  retryJitterMs?: number;
  fetchImpl?: typeof fetch;
}

const MAX_BODY_BYTES = 64 * 1024;

const unavailable = (why: string, cause?: unknown) =>
  new IdentityError("WECHAT_UNAVAILABLE", `WeChat is unavailable: ${why}`, {}, { cause });

/**
 * The real WeChat server API client. The app secret goes only into the request URL, which never
 * appears in an error or a log line (a well-known SDK leaked secrets through URI exceptions).
 */
export function createWechatClient(options: WechatClientOptions): WechatApi {
  const fetchImpl = options.fetchImpl ?? fetch;
  const baseUrl = () =>
    (typeof options.baseUrl === "string" ? options.baseUrl : options.baseUrl()).replace(/\/+$/, "");
  const jitterMs = options.retryJitterMs ?? 200;

  async function getJson(url: string): Promise<Record<string, unknown>> {
    let response: Response;
    try {
      response = await fetchImpl(url, { signal: AbortSignal.timeout(options.timeoutMs) });
    } catch (err) {
      const timedOut = err instanceof DOMException && err.name === "TimeoutError";
      // Deliberately not the fetch error's message: some runtimes put the URL in it.
      throw unavailable(timedOut ? `no answer within ${options.timeoutMs} ms` : "connection failed");
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw unavailable(`HTTP status ${response.status}`);
    }
    const length = Number(response.headers.get("content-length") ?? 0);
    if (length > MAX_BODY_BYTES) {
      await response.body?.cancel();
      throw unavailable("oversized answer");
    }
    let body: unknown;
    try {
      const text = await response.text();
      if (text.length > MAX_BODY_BYTES) throw new Error("oversized");
      body = JSON.parse(text);
    } catch (err) {
      throw unavailable("malformed answer", err instanceof SyntaxError ? undefined : err);
    }
    if (typeof body !== "object" || body === null || Array.isArray(body))
      throw unavailable("malformed answer");
    return body as Record<string, unknown>;
  }

  async function code2SessionOnce(app: AppCredentials, code: string): Promise<Code2SessionResult> {
    const query = new URLSearchParams({
      appid: app.appId,
      secret: app.appSecret,
      js_code: code,
      grant_type: "authorization_code",
    });
    const body = await getJson(`${baseUrl()}/sns/jscode2session?${query}`);
    const errcode = body.errcode ?? 0;
    if (typeof errcode !== "number") throw unavailable("malformed answer");
    if (errcode !== 0) throw code2SessionError(errcode);
    const { openid, session_key: sessionKey, unionid } = body;
    if (typeof openid !== "string" || openid.length === 0 || openid.length > 128) {
      throw unavailable("answer without openid");
    }
    if (typeof sessionKey !== "string" || sessionKey.length === 0 || sessionKey.length > 128) {
      throw unavailable("answer without session_key");
    }
    if (unionid !== undefined && (typeof unionid !== "string" || unionid.length > 128)) {
      throw unavailable("malformed unionid");
    }
    return { openid, sessionKey, unionid: unionid ? unionid : null };
  }

  return {
    async code2Session(app, code) {
      try {
        return await code2SessionOnce(app, code);
      } catch (err) {
        // errcode -1 is "system busy, retry later": one retry after a random pause. Nothing else
        // is retried: a timed-out exchange may have consumed the code.
        if (
          err instanceof IdentityError &&
          err.metadata.wechat_errcode === String(WECHAT_ERRCODES.SYSTEM_BUSY)
        ) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * jitterMs));
          return await code2SessionOnce(app, code);
        }
        throw err;
      }
    },
  };
}
