import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { AccessClaims } from "../../domain/tokens.js";
import { ClaimsSchema, TokenPairSchema } from "../../gen/identity/v1/identity_pb.js";
import type { IssuedTokens } from "../../identity/issue-token-pair.js";

/** Messages more than one RPC answers with. */

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
    tokenId: claims.tokenId,
    issuedAt: timestampFromMs(claims.issuedAt * 1000),
    expiresAt: timestampFromMs(claims.expiresAt * 1000),
  });
}
