import type { IncomingMessage, ServerResponse } from "node:http";
import { type AppCredentials, type Clock, systemClock } from "../domain/ports.js";
import { createDevices, type IssueCodeInput } from "./device.js";
import { createFaults, isSandboxFault, type SandboxFault } from "./faults.js";
import { createWechatApi, type WechatAnswer } from "./wechat-api.js";
import { createWorld } from "./world.js";

export type { IssueCodeInput } from "./device.js";
export type { SandboxFault } from "./faults.js";

/**
 * A stand-in for WeChat's servers, since the real ones cannot be reached from tests or a laptop
 * (docs/sandbox.md). It behaves like WeChat where the service depends on it (wechat-api.ts),
 * hands simulated devices their codes and encrypted data (device.ts), and fails or slows down on
 * demand (faults.ts). This file puts them together behind one HTTP surface, relative to where it
 * is mounted (`/sandbox` in the embedded default):
 *
 *   GET  /sns/jscode2session?appid&secret&js_code&grant_type   WeChat's own endpoints
 *   POST /cgi-bin/stable_token {"grant_type", "appid", "secret", "force_refresh"}
 *   POST /wxa/business/getuserphonenumber?access_token {"code", "openid"?}
 *   GET  /wxa/checksession?access_token&openid&signature&sig_method=hmac_sha256
 *   POST /login   {"openid"?, "unionid"?, "appId"?, "rotateSessionKey"?} -> {"code", "openid"}
 *   POST /phone-code {"openid", "appId"?, "phoneNumber"?} -> {"code"}
 *   POST /user-data {"openid", "appId"?, "data"?: {...}} -> {"encryptedData", "iv"}
 *   POST /faults  {"fault": -1 | 40029 | ... | "http500" | "malformed" | "hang", "times"?: 1..100}
 *   POST /latency {"ms": 0..30000}
 *   GET  /stats   {"code2SessionCalls": N, ...}
 */
export interface WechatSandbox {
  /** Serves a request whose path is relative to the mount point; false when the path is not ours. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean>;
  issueCode(input?: IssueCodeInput): { code: string; openid: string };
  /** The session_key WeChat currently holds for a user (tests use it to encrypt user data). */
  sessionKeyOf(appId: string, openid: string): string | undefined;
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
  issuePhoneCode(input: { appId?: string; openid: string; phoneNumber?: string }): { code: string };
  /** Whether WeChat would accept this access_token for the app now (APIs that take one check it). */
  accessTokenValid(appId: string, token: string): boolean;
  reset(): void;
}

export interface SandboxOptions {
  apps: readonly AppCredentials[];
  latencyMs?: number;
  clock?: Clock;
}

const MAX_BODY_BYTES = 16 * 1024;
/** What one request may order: a fault at most this many times, a latency at most this long. */
export const MAX_FAULT_TIMES = 100;
export const MAX_LATENCY_MS = 30_000;

const wholeNumber = (value: unknown, min: number, max: number): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max;

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error("body too large");
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new Error("not an object");
  return parsed as Record<string, unknown>;
}

export function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  res.end(text);
}

const optionalString = (value: unknown): string | undefined =>
  typeof value === "string" && value.length > 0 ? value : undefined;

export function createWechatSandbox(options: SandboxOptions): WechatSandbox {
  const world = createWorld(options.apps, options.clock ?? systemClock);
  const api = createWechatApi(world);
  const devices = createDevices(world);
  const faults = createFaults(options.latencyMs);
  const stats = {
    code2SessionCalls: 0,
    stableTokenCalls: 0,
    forcedRefreshes: 0,
    phoneNumberCalls: 0,
    checkSessionCalls: 0,
  };

  /** Answers one WeChat API call, after the configured latency and any queued fault. */
  async function serveApi(res: ServerResponse, counter: keyof typeof stats, answer: () => WechatAnswer) {
    const fault = await faults.next();
    if (fault === "hang") return; // never answers; the client's timeout must fire
    if (fault === "http500") return send(res, 500, "<html>Internal Server Error</html>");
    if (fault === "malformed") return send(res, 200, "<html>not json</html>");
    stats[counter]++;
    if (typeof fault === "number") return send(res, 200, { errcode: fault, errmsg: "sandbox fault" });
    const { status, body } = answer();
    send(res, status, body);
  }

  /** The routes; each returns false for a path it does not serve. */
  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    switch (`${req.method} ${url.pathname}`) {
      case "GET /sns/jscode2session":
        await serveApi(res, "code2SessionCalls", () => api.jscode2session(url.searchParams));
        return true;
      case "GET /wxa/checksession":
        await serveApi(res, "checkSessionCalls", () => api.checkSession(url.searchParams));
        return true;
      case "POST /wxa/business/getuserphonenumber": {
        const body = await readJson(req);
        const token = url.searchParams.get("access_token") ?? "";
        await serveApi(res, "phoneNumberCalls", () => api.userPhoneNumber(token, body));
        return true;
      }
      case "POST /cgi-bin/stable_token": {
        const body = await readJson(req);
        await serveApi(res, "stableTokenCalls", () => {
          const { forced, ...answer } = api.stableToken(body);
          if (forced) stats.forcedRefreshes++;
          return answer;
        });
        return true;
      }
      case "POST /login": {
        const body = await readJson(req);
        const issued = devices.issueCode({
          appId: optionalString(body.appId),
          openid: optionalString(body.openid),
          unionid: optionalString(body.unionid),
          rotateSessionKey: body.rotateSessionKey === true,
        });
        send(res, 200, issued);
        return true;
      }
      case "POST /phone-code": {
        const body = await readJson(req);
        const openid = optionalString(body.openid);
        if (!openid) {
          send(res, 400, { error: "openid is required" });
          return true;
        }
        const appId = optionalString(body.appId);
        send(
          res,
          200,
          devices.issuePhoneCode({ appId, openid, phoneNumber: optionalString(body.phoneNumber) }),
        );
        return true;
      }
      case "POST /user-data": {
        const body = await readJson(req);
        const openid = optionalString(body.openid);
        const appId = optionalString(body.appId) ?? world.defaultAppId;
        if (!openid || !appId || devices.sessionKeyOf(appId, openid) === undefined) {
          send(res, 400, { error: "openid of a user who has logged in is required" });
          return true;
        }
        const data =
          typeof body.data === "object" && body.data !== null && !Array.isArray(body.data)
            ? (body.data as Record<string, unknown>)
            : { openId: openid, nickName: "sandbox user" };
        send(res, 200, devices.encryptUserData(appId, openid, data));
        return true;
      }
      case "POST /faults": {
        const body = await readJson(req);
        if (!isSandboxFault(body.fault)) {
          send(res, 400, { error: "fault must be an errcode or http500|malformed|hang" });
          return true;
        }
        const times = body.times ?? 1;
        if (!wholeNumber(times, 1, MAX_FAULT_TIMES)) {
          send(res, 400, { error: `times must be a whole number from 1 to ${MAX_FAULT_TIMES}` });
          return true;
        }
        faults.failNext(body.fault, times);
        send(res, 200, { queued: faults.queued });
        return true;
      }
      case "POST /latency": {
        const body = await readJson(req);
        if (!wholeNumber(body.ms, 0, MAX_LATENCY_MS)) {
          send(res, 400, { error: `ms must be a whole number from 0 to ${MAX_LATENCY_MS}` });
          return true;
        }
        faults.setLatency(body.ms);
        send(res, 200, { ms: faults.latencyMs });
        return true;
      }
      case "GET /stats":
        send(res, 200, stats);
        return true;
      default:
        return false;
    }
  }

  return {
    stats,
    issueCode: devices.issueCode,
    issuePhoneCode: devices.issuePhoneCode,
    sessionKeyOf: devices.sessionKeyOf,
    encryptUserData: devices.encryptUserData,
    accessTokenValid: api.accessTokenValid,
    failNext: faults.failNext,
    setLatency: faults.setLatency,
    reset() {
      faults.reset();
      for (const name of Object.keys(stats) as Array<keyof typeof stats>) stats[name] = 0;
    },
    async handle(req, res, path) {
      try {
        return await route(req, res, new URL(path, "http://sandbox"));
      } catch (err) {
        send(res, 400, { error: err instanceof Error ? err.message : "bad request" });
        return true;
      }
    },
  };
}
