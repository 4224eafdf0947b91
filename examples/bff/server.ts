import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { IdentityClient } from "../../src/client/index.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import type { TokenPair } from "../../src/gen/identity/v1/identity_pb.js";
import { bearerToken, sendError, sendJson } from "../http-json.js";

/**
 * A reference BFF: the HTTP JSON API a mini-program talks to, in front of the identity service
 * (over Connect). Errors carry the service's reason so the SDK knows what to do: 401 means
 * refresh or log in again, 503 means the identity service is unreachable (keep the tokens).
 *
 *   POST /api/auth/login    {code, attemptId}          -> tokens and user
 *   POST /api/auth/login/phone {code, phoneCode, attemptId} -> tokens and user (phone login)
 *   POST /api/auth/refresh  {refreshToken}             -> tokens
 *   POST /api/auth/logout   {refreshToken?} + Bearer   -> 204
 *   POST /api/auth/decrypt  {encryptedData, iv, rawData?, signature?} + Bearer -> {data}
 *   POST /api/auth/phone    {code} + Bearer            -> {phoneNumber, ...}
 *   GET  /api/auth/sessions Bearer                     -> {sessions: [...]}, the user's devices
 *   POST /api/auth/sessions/end {sessionId} or {allOthers: true} + Bearer -> {sessionsEnded}
 *   GET  /api/me            Bearer                     -> the verified user
 */
export function createBff(identity: IdentityClient, options: { appId?: string } = {}): RequestListener {
  const appId = options.appId ?? "";
  return async (req, res) => {
    try {
      const route = `${req.method} ${new URL(req.url ?? "/", "http://bff").pathname}`;
      const handler = routes[route];
      if (!handler) return sendError(res, Code.NotFound, "NO_SUCH_ROUTE", `no route ${route}`);
      await handler(identity, req, res, appId);
    } catch (err) {
      const e = ConnectError.from(err);
      const reason = e.findDetails(ErrorInfoSchema)[0]?.reason ?? Code[e.code].toUpperCase();
      sendError(res, e.code, reason, e.rawMessage);
    }
  };
}

type Handler = (
  identity: IdentityClient,
  req: IncomingMessage,
  res: ServerResponse,
  appId: string,
) => Promise<void>;

const routes: Record<string, Handler> = {
  async "POST /api/auth/login"(identity, req, res, appId) {
    const body = await readJson(req);
    const { tokens, user, newUser } = await identity.login({
      appId,
      code: text(body.code),
      // The mini-program makes one per wx.login code and sends it again on a retry.
      attemptId: text(body.attemptId),
      client: clientInfo(req),
    });
    sendJson(res, 200, { ...tokenJson(tokens), newUser, user: { id: user?.id, openid: user?.openid } });
  },
  async "POST /api/auth/login/phone"(identity, req, res, appId) {
    const body = await readJson(req);
    const { tokens, user, newUser } = await identity.loginWithPhone({
      appId,
      code: text(body.code),
      // The getPhoneNumber button event's detail.code.
      phoneCode: text(body.phoneCode),
      attemptId: text(body.attemptId),
      client: clientInfo(req),
    });
    sendJson(res, 200, {
      ...tokenJson(tokens),
      newUser,
      user: { id: user?.id, openid: user?.openid, phoneNumber: user?.phoneNumber },
    });
  },
  async "POST /api/auth/refresh"(identity, req, res) {
    // With the end user's address: failed refreshes are limited per end user, not per BFF.
    const refreshToken = text((await readJson(req)).refreshToken);
    const { tokens } = await identity.refresh({ refreshToken, client: clientInfo(req) });
    sendJson(res, 200, tokenJson(tokens));
  },
  async "POST /api/auth/logout"(identity, req, res) {
    const body = await readJson(req);
    await identity.logout({ accessToken: bearerToken(req), refreshToken: text(body.refreshToken) });
    sendJson(res, 204);
  },
  async "POST /api/auth/decrypt"(identity, req, res) {
    const body = await readJson(req);
    const { data } = await identity.decryptUserData({
      accessToken: bearerToken(req),
      encryptedData: text(body.encryptedData),
      iv: text(body.iv),
      rawData: text(body.rawData),
      signature: text(body.signature),
    });
    sendJson(res, 200, { data });
  },
  async "POST /api/auth/phone"(identity, req, res) {
    const { phoneNumber, purePhoneNumber, countryCode } = await identity.getPhoneNumber({
      accessToken: bearerToken(req),
      phoneCode: text((await readJson(req)).code),
    });
    sendJson(res, 200, { phoneNumber, purePhoneNumber, countryCode });
  },
  async "GET /api/auth/sessions"(identity, req, res) {
    const { sessions } = await identity.listSessions({ accessToken: bearerToken(req) });
    sendJson(res, 200, {
      sessions: sessions.map((s) => ({
        sessionId: s.sessionId,
        deviceId: s.deviceId,
        clientIp: s.clientIp,
        userAgent: s.userAgent,
        createdAt: s.createdAt ? timestampMs(s.createdAt) : undefined,
        lastRefreshedAt: s.lastRefreshedAt ? timestampMs(s.lastRefreshedAt) : undefined,
        current: s.current,
      })),
    });
  },
  async "POST /api/auth/sessions/end"(identity, req, res) {
    const body = await readJson(req);
    const { sessionsEnded } = await identity.endSession({
      accessToken: bearerToken(req),
      sessionId: text(body.sessionId),
      allOthers: body.allOthers === true,
    });
    sendJson(res, 200, { sessionsEnded });
  },
  async "GET /api/me"(identity, req, res) {
    const { claims } = await identity.verifyToken({ accessToken: bearerToken(req) });
    sendJson(res, 200, { userId: claims?.userId, openid: claims?.openid, roles: claims?.roles });
  },
};

function tokenJson(tokens: TokenPair | undefined) {
  return {
    accessToken: tokens?.accessToken,
    refreshToken: tokens?.refreshToken,
    accessTokenExpiresAt: tokens?.accessTokenExpiresAt ? timestampMs(tokens.accessTokenExpiresAt) : undefined,
  };
}

const text = (value: unknown) => (typeof value === "string" ? value : "");
/** The mini-program's address: the first X-Forwarded-For hop behind a proxy, else the socket's. */
const clientIp = (req: IncomingMessage) =>
  (req.headers["x-forwarded-for"]?.toString().split(",")[0] ?? req.socket.remoteAddress ?? "")
    .trim()
    .slice(0, 64);

/** The end user as the service's rate limits count them. */
const clientInfo = (req: IncomingMessage) => ({
  ip: clientIp(req),
  userAgent: req.headers["user-agent"] ?? "",
});

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new ConnectError("request body too large", Code.InvalidArgument);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    if (typeof value === "object" && value !== null && !Array.isArray(value))
      return value as Record<string, unknown>;
  } catch {
    // falls through
  }
  throw new ConnectError("request body is not a JSON object", Code.InvalidArgument);
}
