import { create } from "@bufbuild/protobuf";
import { timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import type { LiveSession, UserRecord } from "../../domain/ports.js";
import type { AccessClaims } from "../../domain/tokens.js";
import {
  ClaimsSchema,
  type ClientInfo as ClientInfoMessage,
  SessionInfoSchema,
  TokenPairSchema,
  UserSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { ClientInfo } from "../../identity/end-user.js";
import type { IssuedTokens } from "../../identity/issue-token-pair.js";

/** Messages more than one RPC reads or answers with. */

/** When the caller stops waiting (Date.now() ms), if it said (grpc-timeout, connect-timeout-ms). */
export function deadlineOf(context: HandlerContext): number | undefined {
  const left = context.timeoutMs();
  return left === undefined ? undefined : Date.now() + left;
}

export function fromClientInfo(client: ClientInfoMessage | undefined): ClientInfo {
  return { ip: client?.ip ?? "", userAgent: client?.userAgent ?? "", deviceId: client?.deviceId ?? "" };
}

export function toTokenPair(tokens: IssuedTokens) {
  return create(TokenPairSchema, {
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    tokenType: "Bearer",
    accessTokenExpiresAt: timestampFromMs(tokens.accessClaims.expiresAt * 1000),
    refreshTokenExpiresAt: timestampFromMs(tokens.refreshTokenExpiresAt.getTime()),
  });
}

export function toClaimsMessage(claims: AccessClaims) {
  return create(ClaimsSchema, {
    userId: claims.userId,
    sessionId: claims.sessionId,
    appId: claims.appId,
    openid: claims.openid,
    unionid: claims.unionid,
    roles: claims.roles,
    permissions: claims.permissions,
    tokenId: claims.tokenId,
    issuedAt: timestampFromMs(claims.issuedAt * 1000),
    expiresAt: timestampFromMs(claims.expiresAt * 1000),
  });
}

/** The User message of Login and UpdateProfile: a user of one app, the profile defaults applied. */
export function toUserMessage(
  user: UserRecord & { appId: string; openid: string; unionid: string | null },
  permissions: readonly string[],
) {
  return create(UserSchema, {
    id: user.id,
    appId: user.appId,
    openid: user.openid,
    unionid: user.unionid ?? "",
    roles: user.roles,
    permissions: [...permissions],
    phoneNumber: user.phoneNumber ?? "",
    nickname: user.nickname ?? "",
    avatarUrl: user.avatarUrl ?? "",
    createdAt: timestampFromMs(user.createdAt.getTime()),
  });
}

/** A live session as ListSessions and AdminService.GetUser show it. */
export function toSessionInfo(session: LiveSession & { current?: boolean }) {
  return create(SessionInfoSchema, {
    sessionId: session.id,
    appId: session.appId,
    deviceId: session.client.deviceId,
    clientIp: session.client.ip,
    userAgent: session.client.userAgent,
    createdAt: timestampFromDate(session.createdAt),
    lastRefreshedAt: session.lastRefreshedAt ? timestampFromDate(session.lastRefreshedAt) : undefined,
    current: session.current ?? false,
  });
}
