import { createCipheriv, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type AppCredentials, type Clock, systemClock, WECHAT_CODE_LIFETIME_MS } from "../domain/ports.js";
import { sessionKeySignature } from "../domain/user-data.js";
import { WECHAT_ERRCODES } from "./errcodes.js";

/**
 * A stand-in for WeChat's servers, since the real ones cannot be reached from tests or a laptop.
 * It behaves like WeChat where the service depends on it: codes are single-use and expire after
 * five minutes, credentials are checked, and errcodes, latency, HTTP failures, malformed answers
 * and hangs can be ordered up front.
 *
 * HTTP surface (relative to where it is mounted, `/sandbox` in the embedded default):
 *   GET  /sns/jscode2session?appid&secret&js_code&grant_type   WeChat's own endpoints
 *   POST /cgi-bin/stable_token {"grant_type", "appid", "secret", "force_refresh"}
 *   POST /wxa/business/getuserphonenumber?access_token {"code", "openid"?}
 *   GET  /wxa/checksession?access_token&openid&signature&sig_method=hmac_sha256
 *   POST /phone-code {"openid", "appId"?, "phoneNumber"?} -> {"code"}
 *                 what the getPhoneNumber button gives a device
 *   POST /login   {"openid"?, "unionid"?, "appId"?, "rotateSessionKey"?} -> {"code", "openid"}
 *                 what wx.login() gives a device
 *   POST /user-data {"openid", "appId"?, "data"?: {...}} -> {"encryptedData", "iv"}
 *                 what a WeChat API on the device hands the mini-program (data + watermark,
 *                 encrypted with the user's session_key)
 *   POST /faults  {"fault": -1 | 40029 | ... | "http500" | "malformed" | "hang", "times"?}
 *   POST /latency {"ms": 250}
 *   GET  /stats   {"code2SessionCalls": N}
 */

export type SandboxFault = number | "http500" | "malformed" | "hang";

export interface IssueCodeInput {
  appId?: string;
  openid?: string;
  unionid?: string;
  /** Give the user a new session_key, as WeChat sometimes does on wx.login(). */
  rotateSessionKey?: boolean;
}

export interface WechatSandbox {
  /** Serves a request whose path is relative to the mount point; false when the path is not ours. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean>;
  issueCode(input?: IssueCodeInput): { code: string; openid: string };
  /** The session_key WeChat currently holds for a user (tests use it to encrypt user data). */
  sessionKeyOf(appId: string, openid: string): string | undefined;
  /**
   * What a WeChat API on the device gives the mini-program: `data` plus a watermark (this app,
   * now), AES-128-CBC encrypted with the user's current session_key. `watermark` overrides it.
   */
  encryptUserData(
    appId: string,
    openid: string,
    data: Record<string, unknown>,
    watermark?: { appid?: string; timestamp?: number },
  ): { encryptedData: string; iv: string };
  failNext(fault: SandboxFault, times?: number): void;
  setLatency(ms: number): void;
  readonly stats: {
    code2SessionCalls: number;
    stableTokenCalls: number;
    forcedRefreshes: number;
    phoneNumberCalls: number;
    checkSessionCalls: number;
  };
  /**
   * What the getPhoneNumber button gives a device: a single-use code, valid five minutes, for
   * this user's phone number (a default one when none is given).
   */
  issuePhoneCode(input: { appId?: string; openid: string; phoneNumber?: string }): { code: string };
  /** Whether WeChat would accept this access_token for the app now (APIs that take one check it). */
  accessTokenValid(appId: string, token: string): boolean;
  reset(): void;
}

interface IssuedCode {
  appId: string;
  openid: string;
  unionid: string | undefined;
  issuedAt: number;
  used: boolean;
}

export interface SandboxOptions {
  apps: readonly AppCredentials[];
  latencyMs?: number;
  clock?: Clock;
}

const ACCESS_TOKEN_LIFETIME_MS = 7200 * 1000;
/** WeChat issues the next access_token this long before the current one expires. */
const ACCESS_TOKEN_RENEWAL_MS = 5 * 60 * 1000;

function randomId(bytes: number): string {
  return randomBytes(bytes).toString("base64url").replace(/[-_]/g, "x");
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 16 * 1024) throw new Error("body too large");
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new Error("not an object");
  return parsed as Record<string, unknown>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  res.end(text);
}

const optionalString = (value: unknown): string | undefined =>
  typeof value === "string" && value.length > 0 ? value : undefined;

export function createWechatSandbox(options: SandboxOptions): WechatSandbox {
  const clock = options.clock ?? systemClock;
  const apps = new Map(options.apps.map((app) => [app.appId, app.appSecret]));
  const defaultAppId = options.apps[0]?.appId;
  const codes = new Map<string, IssuedCode>();
  const sessionKeys = new Map<string, string>();
  const faults: SandboxFault[] = [];
  let latencyMs = options.latencyMs ?? 0;
  const stats = {
    code2SessionCalls: 0,
    stableTokenCalls: 0,
    forcedRefreshes: 0,
    phoneNumberCalls: 0,
    checkSessionCalls: 0,
  };
  interface AccessToken {
    token: string;
    expiresAt: number;
    /** The token this one renewed, valid until its own expiry. */
    previous?: AccessToken;
  }
  const accessTokens = new Map<string, AccessToken>();
  const phoneCodes = new Map<string, IssuedCode & { phoneNumber: string }>();

  function accessTokenValid(appId: string, token: string): boolean {
    const now = clock.now();
    const current = accessTokens.get(appId);
    return [current, current?.previous].some(
      (t) => t !== undefined && t.token === token && t.expiresAt > now,
    );
  }

  /** The app an access_token belongs to, or WeChat's 40001 answer for a token it does not accept. */
  function appOfAccessToken(
    token: string,
  ): { appId: string } | { rejected: { status: number; body: unknown } } {
    const appId = [...accessTokens.keys()].find((id) => accessTokenValid(id, token));
    if (appId) return { appId };
    const body = {
      errcode: WECHAT_ERRCODES.ACCESS_TOKEN_INVALID,
      errmsg: "invalid credential, access_token is invalid or not latest",
    };
    return { rejected: { status: 200, body } };
  }

  /** The app a device-side call names (or the only one); a programming error in a test otherwise. */
  function knownApp(appId: string | undefined): string {
    if (!appId || !apps.has(appId)) throw new Error(`sandbox: unknown app ${appId ?? "(none configured)"}`);
    return appId;
  }

  /** wxa/checksession: is the signature hmac_sha256(the user's current session_key, "")? */
  function checkSession(query: URLSearchParams): { status: number; body: unknown } {
    const caller = appOfAccessToken(query.get("access_token") ?? "");
    if ("rejected" in caller) return caller.rejected;
    const { appId } = caller;
    const sessionKey = sessionKeys.get(`${appId}/${query.get("openid") ?? ""}`);
    const valid =
      query.get("sig_method") === "hmac_sha256" &&
      sessionKey !== undefined &&
      query.get("signature") === sessionKeySignature(sessionKey);
    return {
      status: 200,
      body: valid
        ? { errcode: 0, errmsg: "ok" }
        : { errcode: WECHAT_ERRCODES.INVALID_SIGNATURE, errmsg: "invalid signature" },
    };
  }

  /** wxa/business/getuserphonenumber: the token names the app; the code is single-use, 5 minutes. */
  function userPhoneNumber(token: string, body: Record<string, unknown>): { status: number; body: unknown } {
    const caller = appOfAccessToken(token);
    if ("rejected" in caller) return caller.rejected;
    const { appId } = caller;
    const code = typeof body.code === "string" ? body.code : "";
    const issued = phoneCodes.get(code);
    const now = clock.now();
    const openidMismatch =
      typeof body.openid === "string" && body.openid !== "" && body.openid !== issued?.openid;
    if (
      !issued ||
      issued.used ||
      issued.appId !== appId ||
      openidMismatch ||
      now - issued.issuedAt > WECHAT_CODE_LIFETIME_MS
    ) {
      return { status: 200, body: { errcode: WECHAT_ERRCODES.INVALID_CODE, errmsg: "invalid code" } };
    }
    issued.used = true;
    return {
      status: 200,
      body: {
        errcode: 0,
        errmsg: "ok",
        phone_info: {
          phoneNumber: issued.phoneNumber,
          purePhoneNumber: issued.phoneNumber.replace(/^\+86 ?/, ""),
          countryCode: "86",
          watermark: { timestamp: Math.floor(now / 1000), appid: appId },
        },
      },
    };
  }

  function forgetExpiredCodes(now: number) {
    for (const [code, issued] of codes) {
      if (now - issued.issuedAt > WECHAT_CODE_LIFETIME_MS) codes.delete(code);
      else break; // Map keeps insertion order, so the rest are younger.
    }
  }

  function issueCode(input: IssueCodeInput = {}) {
    const appId = knownApp(input.appId ?? defaultAppId);
    const openid = input.openid ?? `o${randomId(20)}`;
    const userKey = `${appId}/${openid}`;
    if (input.rotateSessionKey || !sessionKeys.has(userKey)) {
      sessionKeys.set(userKey, randomBytes(16).toString("base64"));
    }
    const now = clock.now();
    forgetExpiredCodes(now);
    const code = randomId(24).slice(0, 32);
    codes.set(code, { appId, openid, unionid: input.unionid, issuedAt: now, used: false });
    return { code, openid };
  }

  function jscode2session(query: URLSearchParams): { status: number; body: unknown } {
    const appId = query.get("appid") ?? "";
    const secret = apps.get(appId);
    if (secret === undefined)
      return { status: 200, body: { errcode: WECHAT_ERRCODES.INVALID_APPID, errmsg: "invalid appid" } };
    if (query.get("secret") !== secret) {
      return { status: 200, body: { errcode: WECHAT_ERRCODES.INVALID_SECRET, errmsg: "invalid appsecret" } };
    }
    const code = query.get("js_code") ?? "";
    const issued = codes.get(code);
    const now = clock.now();
    if (!issued || issued.appId !== appId || now - issued.issuedAt > WECHAT_CODE_LIFETIME_MS) {
      return { status: 200, body: { errcode: WECHAT_ERRCODES.INVALID_CODE, errmsg: "invalid code" } };
    }
    if (issued.used)
      return { status: 200, body: { errcode: WECHAT_ERRCODES.CODE_USED, errmsg: "code been used" } };
    issued.used = true;
    const body: Record<string, string> = {
      openid: issued.openid,
      session_key: sessionKeys.get(`${appId}/${issued.openid}`) ?? "",
    };
    if (issued.unionid) body.unionid = issued.unionid;
    return { status: 200, body };
  }

  /** Answers one WeChat API call, after the configured latency and any queued fault. */
  async function serveApi(
    res: ServerResponse,
    counter: keyof typeof stats,
    answer: () => { status: number; body: unknown },
  ) {
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
    const fault = faults.shift();
    if (fault === "hang") return; // never answers; the client's timeout must fire
    if (fault === "http500") return send(res, 500, "<html>Internal Server Error</html>");
    if (fault === "malformed") return send(res, 200, "<html>not json</html>");
    stats[counter]++;
    if (typeof fault === "number") return send(res, 200, { errcode: fault, errmsg: "sandbox fault" });
    const { status, body } = answer();
    send(res, status, body);
  }

  /**
   * cgi-bin/stable_token: one access_token per app, valid 7200 s. Without force_refresh the
   * current token comes back (with its remaining lifetime) until its last 5 minutes, when a new
   * one is issued and the old stays valid until it expires. With force_refresh a new token
   * replaces the old ones, which stop working at once: how services knock each other out.
   */
  function stableToken(body: Record<string, unknown>): { status: number; body: unknown } {
    const appId = typeof body.appid === "string" ? body.appid : "";
    const secret = apps.get(appId);
    if (secret === undefined)
      return { status: 200, body: { errcode: WECHAT_ERRCODES.INVALID_APPID, errmsg: "invalid appid" } };
    if (body.secret !== secret)
      return { status: 200, body: { errcode: WECHAT_ERRCODES.INVALID_SECRET, errmsg: "invalid appsecret" } };
    if (body.grant_type !== "client_credential")
      return { status: 200, body: { errcode: 40002, errmsg: "invalid grant_type" } };
    const now = clock.now();
    let current = accessTokens.get(appId);
    const forced = body.force_refresh === true;
    if (forced || !current || current.expiresAt - ACCESS_TOKEN_RENEWAL_MS <= now) {
      if (forced) stats.forcedRefreshes++;
      const previous =
        !forced && current && current.expiresAt > now ? { ...current, previous: undefined } : undefined;
      current = { token: `AT_${randomId(96)}`, expiresAt: now + ACCESS_TOKEN_LIFETIME_MS, previous };
      accessTokens.set(appId, current);
    }
    return {
      status: 200,
      body: { access_token: current.token, expires_in: Math.ceil((current.expiresAt - now) / 1000) },
    };
  }

  const sandbox: WechatSandbox = {
    stats,
    issueCode,
    sessionKeyOf: (appId, openid) => sessionKeys.get(`${appId}/${openid}`),
    accessTokenValid,
    issuePhoneCode({ appId: requested, openid, phoneNumber = "+86 13800138000" }) {
      const appId = knownApp(requested ?? defaultAppId);
      const code = randomId(24).slice(0, 32);
      phoneCodes.set(code, {
        appId,
        openid,
        unionid: undefined,
        issuedAt: clock.now(),
        used: false,
        phoneNumber,
      });
      return { code };
    },
    encryptUserData(appId, openid, data, watermark = {}) {
      const sessionKey = sessionKeys.get(`${appId}/${openid}`);
      if (!sessionKey) throw new Error(`sandbox: ${appId}/${openid} has never logged in`);
      const plaintext = JSON.stringify({
        ...data,
        watermark: { appid: appId, timestamp: Math.floor(clock.now() / 1000), ...watermark },
      });
      const iv = randomBytes(16);
      const cipher = createCipheriv("aes-128-cbc", Buffer.from(sessionKey, "base64"), iv);
      const encrypted = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return { encryptedData: encrypted.toString("base64"), iv: iv.toString("base64") };
    },
    failNext(fault, times = 1) {
      for (let i = 0; i < times; i++) faults.push(fault);
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    reset() {
      faults.length = 0;
      latencyMs = options.latencyMs ?? 0;
      for (const name of Object.keys(stats) as Array<keyof typeof stats>) stats[name] = 0;
    },
    async handle(req, res, path) {
      const url = new URL(path, "http://sandbox");
      const route = `${req.method} ${url.pathname}`;
      try {
        switch (route) {
          case "GET /sns/jscode2session":
            await serveApi(res, "code2SessionCalls", () => jscode2session(url.searchParams));
            return true;
          case "GET /wxa/checksession":
            await serveApi(res, "checkSessionCalls", () => checkSession(url.searchParams));
            return true;
          case "POST /wxa/business/getuserphonenumber": {
            const body = await readJson(req);
            await serveApi(res, "phoneNumberCalls", () =>
              userPhoneNumber(url.searchParams.get("access_token") ?? "", body),
            );
            return true;
          }
          case "POST /phone-code": {
            const body = await readJson(req);
            const openid = optionalString(body.openid);
            if (!openid) {
              send(res, 400, { error: "openid is required" });
              return true;
            }
            send(
              res,
              200,
              sandbox.issuePhoneCode({
                appId: optionalString(body.appId),
                openid,
                phoneNumber: optionalString(body.phoneNumber),
              }),
            );
            return true;
          }
          case "POST /cgi-bin/stable_token": {
            const body = await readJson(req);
            await serveApi(res, "stableTokenCalls", () => stableToken(body));
            return true;
          }
          case "POST /login": {
            const body = await readJson(req);
            const issued = issueCode({
              appId: optionalString(body.appId),
              openid: optionalString(body.openid),
              unionid: optionalString(body.unionid),
              rotateSessionKey: body.rotateSessionKey === true,
            });
            send(res, 200, issued);
            return true;
          }
          case "POST /user-data": {
            const body = await readJson(req);
            const openid = optionalString(body.openid);
            const appId = optionalString(body.appId) ?? defaultAppId;
            if (!openid || !appId || !sessionKeys.has(`${appId}/${openid}`)) {
              send(res, 400, { error: "openid of a user who has logged in is required" });
              return true;
            }
            const data =
              typeof body.data === "object" && body.data !== null && !Array.isArray(body.data)
                ? (body.data as Record<string, unknown>)
                : { openId: openid, nickName: "sandbox user" };
            send(res, 200, sandbox.encryptUserData(appId, openid, data));
            return true;
          }
          case "POST /faults": {
            const body = await readJson(req);
            const fault = body.fault;
            const valid =
              typeof fault === "number" || fault === "http500" || fault === "malformed" || fault === "hang";
            if (!valid) {
              send(res, 400, { error: "fault must be an errcode or http500|malformed|hang" });
              return true;
            }
            sandbox.failNext(fault as SandboxFault, typeof body.times === "number" ? body.times : 1);
            send(res, 200, { queued: faults.length });
            return true;
          }
          case "POST /latency": {
            const body = await readJson(req);
            if (typeof body.ms !== "number" || body.ms < 0) {
              send(res, 400, { error: "ms must be >= 0" });
              return true;
            }
            latencyMs = body.ms;
            send(res, 200, { ms: latencyMs });
            return true;
          }
          case "GET /stats":
            send(res, 200, stats);
            return true;
          default:
            return false;
        }
      } catch (err) {
        send(res, 400, { error: err instanceof Error ? err.message : "bad request" });
        return true;
      }
    },
  };
  return sandbox;
}

/** Runs a sandbox as its own HTTP server (tests, benchmarks); its base URL is WeChat's stand-in. */
export async function startSandboxServer(
  options: SandboxOptions & { port?: number; host?: string },
): Promise<{ sandbox: WechatSandbox; baseUrl: string; close(): Promise<void> }> {
  const sandbox = createWechatSandbox(options);
  const server: Server = createServer((req, res) => {
    void sandbox.handle(req, res, req.url ?? "/").then((served) => {
      if (!served) send(res, 404, { errcode: 404, errmsg: "not found" });
    });
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    sandbox,
    baseUrl: `http://${host}:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
