import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Tracer } from "@opentelemetry/api";
import { IdentityError } from "../domain/errors.js";
import type {
  AppCredentials,
  Code2SessionResult,
  PhoneNumber,
  StableToken,
  WechatApi,
} from "../domain/ports.js";
import { hasControlCharacters } from "../domain/text.js";
import { sessionKeySignature } from "../domain/user-data.js";
import { inSpan } from "../observability/tracing.js";
import { code2SessionError, WECHAT_ERRCODES, wechatError } from "./errcodes.js";

export interface WechatClientOptions {
  /**
   * https://api.weixin.qq.com in production; the sandbox's URL in tests and the embedded default
   * (a function there, since the sandbox's port is known only once the server listens).
   */
  baseUrl: string | (() => string);
  timeoutMs: number;
  /** Upper bound of the random pause before the one retry on errcode -1. */
  retryJitterMs?: number;
  /**
   * Hears of every call: the endpoint's path, WeChat's errcode ("0" for success, "other" for one
   * this service does not know, "unavailable" when no usable answer came) and its seconds.
   */
  observe?: (endpoint: string, errcode: string, seconds: number) => void;
  /** Traces on: each call in a span (its endpoint and errcode; never the URL, which holds secrets). */
  tracer?: Tracer;
}

const KNOWN_ERRCODES = new Set<number>([0, ...Object.values(WECHAT_ERRCODES)]);

const MAX_BODY_BYTES = 64 * 1024;

/** A text field of WeChat's answer as the service will store it: bounded, no control characters. */
const text = (value: unknown, maxLength: number): string | undefined =>
  typeof value === "string" && value.length > 0 && value.length <= maxLength && !hasControlCharacters(value)
    ? value
    : undefined;

/** WeChat's errcode (absent means 0, success); anything but a number is a malformed answer. */
function errcodeOf(body: Record<string, unknown>): number {
  const errcode = body.errcode ?? 0;
  if (typeof errcode !== "number") throw unavailable("malformed answer");
  return errcode;
}

const unavailable = (why: string) => new IdentityError("WECHAT_UNAVAILABLE", `WeChat is unavailable: ${why}`);

/**
 * The real WeChat server API client. The app secret goes only into the request URL, which never
 * appears in an error or a log line (a well-known SDK leaked secrets through URI exceptions).
 * It uses node:http(s) with keep-alive agents rather than fetch, which cost a tenth of a login's CPU
 * more (docs/benchmarks.md).
 */
export function createWechatClient(options: WechatClientOptions): WechatApi & { close(): void } {
  const baseUrl = () =>
    (typeof options.baseUrl === "string" ? options.baseUrl : options.baseUrl()).replace(/\/+$/, "");
  const jitterMs = options.retryJitterMs ?? 200;
  // Idle sockets are dropped after 4 s, before the usual 5 s server keep-alive runs out.
  const agents = {
    http: new HttpAgent({ keepAlive: true, maxSockets: 128, timeout: 4000 }),
    https: new HttpsAgent({ keepAlive: true, maxSockets: 128, timeout: 4000 }),
  };

  /** requestJson, timed and its errcode told to `observe`. */
  async function call(
    endpoint: string,
    query: URLSearchParams | undefined,
    jsonBody?: Record<string, unknown>,
    timeoutMs = options.timeoutMs,
  ): Promise<Record<string, unknown>> {
    const url = `${baseUrl()}${endpoint}${query ? `?${query}` : ""}`;
    if (!options.observe && !options.tracer) return requestJson(url, jsonBody, true, timeoutMs);
    return inSpan(options.tracer, `wechat ${endpoint}`, { "wechat.endpoint": endpoint }, async (span) => {
      const startedAt = performance.now();
      let errcode = "unavailable";
      try {
        const body = await requestJson(url, jsonBody, true, timeoutMs);
        const code = body.errcode ?? 0;
        errcode = typeof code === "number" && KNOWN_ERRCODES.has(code) ? String(code) : "other";
        return body;
      } finally {
        span?.setAttribute("wechat.errcode", errcode);
        options.observe?.(endpoint, errcode, (performance.now() - startedAt) / 1000);
      }
    });
  }

  /** GET, or POST with a JSON body; resolves with the JSON object WeChat answered. */
  function requestJson(
    url: string,
    jsonBody?: Record<string, unknown>,
    reusedSocketRetry = true,
    timeoutMs = options.timeoutMs,
  ): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const fail = (why: string) => settle(() => reject(unavailable(why)));
      const secure = url.startsWith("https:");
      // Deliberately no error text from the socket layer: it can carry the URL.
      const payload = jsonBody === undefined ? undefined : Buffer.from(JSON.stringify(jsonBody));
      const request = (secure ? httpsRequest : httpRequest)(
        url,
        {
          method: payload ? "POST" : "GET",
          agent: secure ? agents.https : agents.http,
          headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
        },
        (response) => {
          if (response.statusCode !== 200) {
            response.resume();
            return fail(`HTTP status ${response.statusCode}`);
          }
          const chunks: Buffer[] = [];
          let size = 0;
          response.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BODY_BYTES) {
              request.destroy();
              return fail("oversized answer");
            }
            chunks.push(chunk);
          });
          response.on("error", () => fail("connection failed"));
          response.on("end", () => {
            let body: unknown;
            try {
              body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
            } catch {
              return fail("malformed answer");
            }
            if (typeof body !== "object" || body === null || Array.isArray(body))
              return fail("malformed answer");
            settle(() => resolve(body as Record<string, unknown>));
          });
        },
      );
      request.on("error", (err: NodeJS.ErrnoException) => {
        // A kept-alive socket the server had just closed: the request was never read, so it is
        // safe to send once more on a fresh connection.
        if (reusedSocketRetry && request.reusedSocket && err.code === "ECONNRESET" && !settled) {
          settled = true;
          clearTimeout(timer);
          requestJson(url, jsonBody, false, timeoutMs).then(resolve, reject);
          return;
        }
        fail("connection failed");
      });
      const timer = setTimeout(() => {
        fail(`no answer within ${timeoutMs} ms`);
        request.destroy();
      }, timeoutMs);
      request.end(payload);
    });
  }

  async function code2SessionOnce(
    app: AppCredentials,
    code: string,
    timeoutMs: number,
  ): Promise<Code2SessionResult> {
    const query = new URLSearchParams({
      appid: app.appId,
      secret: app.appSecret,
      js_code: code,
      grant_type: "authorization_code",
    });
    const body = await call("/sns/jscode2session", query, undefined, timeoutMs);
    const errcode = errcodeOf(body);
    if (errcode !== 0) throw code2SessionError(errcode);
    const openid = text(body.openid, 128);
    if (!openid) throw unavailable("answer without openid");
    const sessionKey = text(body.session_key, 128);
    if (!sessionKey) throw unavailable("answer without session_key");
    const unionid = body.unionid === undefined || body.unionid === "" ? null : text(body.unionid, 128);
    if (unionid === undefined) throw unavailable("malformed unionid");
    return { openid, sessionKey, unionid };
  }

  async function stableToken(app: AppCredentials, forceRefresh: boolean): Promise<StableToken> {
    const body = await call("/cgi-bin/stable_token", undefined, {
      grant_type: "client_credential",
      appid: app.appId,
      secret: app.appSecret,
      force_refresh: forceRefresh,
    });
    const errcode = errcodeOf(body);
    if (errcode !== 0) throw wechatError(errcode);
    const { access_token: accessToken, expires_in: expiresIn } = body;
    if (typeof accessToken !== "string" || accessToken.length === 0 || accessToken.length > 2048) {
      throw unavailable("answer without access_token");
    }
    if (typeof expiresIn !== "number" || !(expiresIn > 0)) throw unavailable("answer without expires_in");
    return { accessToken, expiresInMs: expiresIn * 1000 };
  }

  async function getUserPhoneNumber(accessToken: string, code: string, openid: string): Promise<PhoneNumber> {
    const query = new URLSearchParams({ access_token: accessToken });
    const body = await call("/wxa/business/getuserphonenumber", query, { code, openid });
    const errcode = errcodeOf(body);
    if (errcode === WECHAT_ERRCODES.INVALID_CODE) {
      throw new IdentityError(
        "INVALID_PHONE_CODE",
        "phone_code is invalid, used or expired: it must be the code of the getPhoneNumber button event, not a wx.login() code",
        { field: "phone_code", wechat_errcode: String(errcode) },
      );
    }
    if (errcode !== 0) throw wechatError(errcode);
    const info = body.phone_info as Record<string, unknown> | undefined;
    const phoneNumber = text(info?.phoneNumber, 64);
    const purePhoneNumber = text(info?.purePhoneNumber, 64);
    const countryCode = info?.countryCode === "" ? "" : text(info?.countryCode, 64);
    if (!phoneNumber || !purePhoneNumber || countryCode === undefined)
      throw unavailable("answer without phone_info");
    return { phoneNumber, purePhoneNumber, countryCode };
  }

  async function checkSessionKey(accessToken: string, openid: string, sessionKey: string): Promise<boolean> {
    const query = new URLSearchParams({
      access_token: accessToken,
      openid,
      signature: sessionKeySignature(sessionKey),
      sig_method: "hmac_sha256",
    });
    const body = await call("/wxa/checksession", query);
    const errcode = errcodeOf(body);
    if (errcode === WECHAT_ERRCODES.INVALID_SIGNATURE) return false;
    if (errcode !== 0) throw wechatError(errcode);
    return true;
  }

  return {
    stableToken,
    getUserPhoneNumber,
    checkSessionKey,
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
    async code2Session(app, code, call = {}) {
      // Never past the caller's deadline: an answer after it would reach nobody, and the code
      // would be spent for nothing.
      const budgetMs = Math.min(options.timeoutMs, call.timeoutMs ?? Number.POSITIVE_INFINITY);
      const until = Date.now() + budgetMs;
      try {
        return await code2SessionOnce(app, code, budgetMs);
      } catch (err) {
        // errcode -1 is "system busy, retry later": one retry after a random pause, if there is
        // time left. Nothing else is retried: a timed-out exchange may have consumed the code.
        if (
          err instanceof IdentityError &&
          err.metadata.wechat_errcode === String(WECHAT_ERRCODES.SYSTEM_BUSY)
        ) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * jitterMs));
          if (until - Date.now() > 0) return await code2SessionOnce(app, code, until - Date.now());
        }
        throw err;
      }
    },
  };
}
