import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { AccessClaims } from "../domain/tokens.js";
import {
  type CheckSessionKeyResponse,
  CheckSessionKeyResponseSchema,
  ClaimsSchema,
  type DecryptUserDataResponse,
  DecryptUserDataResponseSchema,
  type GetPhoneNumberResponse,
  GetPhoneNumberResponseSchema,
  type IdentityService,
  type LoginResponse,
  LoginResponseSchema,
  type LogoutResponse,
  LogoutResponseSchema,
  type RefreshResponse,
  RefreshResponseSchema,
  TokenPairSchema,
  type VerifyTokenRequest,
  type VerifyTokenResponse,
  VerifyTokenResponseSchema,
} from "../gen/identity/v1/identity_pb.js";
import type { CheckSessionKey } from "../identity/check-session-key.js";
import type { DecryptUserData } from "../identity/decrypt-user-data.js";
import type { Login } from "../identity/login.js";
import type { Logout } from "../identity/logout.js";
import type { GetPhoneNumber } from "../identity/phone-number.js";
import type { Refresh } from "../identity/refresh.js";
import type { IssuedTokens } from "../identity/token-pair.js";
import type { VerifyToken } from "../identity/verify-token.js";
import type { Logger } from "../util/logger.js";
import { toConnectError } from "./error-map.js";

export interface UseCases {
  login: Login;
  refresh: Refresh;
  logout: Logout;
  verifyToken: VerifyToken;
  decryptUserData: DecryptUserData;
  getPhoneNumber: GetPhoneNumber;
  checkSessionKey: CheckSessionKey;
}

/** Maps errors of a handler; a synchronous handler's answer stays synchronous (no promise hops). */
function guarded<Req, Res>(log: Logger, rpc: string, handler: (req: Req) => Promise<Res> | Res) {
  return (req: Req): Promise<Res> | Res => {
    try {
      const result = handler(req);
      return result instanceof Promise
        ? result.catch((err: unknown) => {
            throw toConnectError(err, log, rpc);
          })
        : result;
    } catch (err) {
      throw toConnectError(err, log, rpc);
    }
  };
}

/** The VerifyToken method on its own: the gRPC thread serves it with a verifier of its own. */
export function verifyTokenMethod(verifyToken: VerifyToken, log: Logger) {
  // VerifyToken hands back the same claims object for a cached token, so the same response
  // message goes out again (and the gRPC adapter reuses its encoding).
  const responses = new WeakMap<AccessClaims, VerifyTokenResponse>();
  return guarded(log, "VerifyToken", (req: VerifyTokenRequest): VerifyTokenResponse => {
    const claims = verifyToken.verify(req.accessToken);
    let response = responses.get(claims);
    if (!response) {
      response = create(VerifyTokenResponseSchema, { claims: toClaimsMessage(claims) });
      responses.set(claims, response);
    }
    return response;
  });
}

/**
 * The IdentityService, written once and mounted on both transports. Each method decodes the
 * request into a use-case input, calls one use case and encodes the result; errors go through
 * the error map.
 */
export function createIdentityServiceImpl(
  useCases: UseCases,
  log: Logger,
): ServiceImpl<typeof IdentityService> {
  const guard = <Req, Res>(rpc: string, handler: (req: Req) => Promise<Res> | Res) =>
    guarded(log, rpc, handler);

  return {
    login: guard("Login", async (req): Promise<LoginResponse> => {
      const result = await useCases.login({
        appId: req.appId,
        code: req.code,
        client: {
          ip: req.client?.ip ?? "",
          userAgent: req.client?.userAgent ?? "",
          deviceId: req.client?.deviceId ?? "",
        },
      });
      const { tokens, user } = result;
      return create(LoginResponseSchema, {
        tokens: toTokenPair(tokens),
        user: {
          id: user.id,
          appId: user.appId,
          openid: user.openid,
          unionid: user.unionid ?? "",
          roles: user.roles,
          phoneNumber: user.phoneNumber ?? "",
          createdAt: timestampFromMs(user.createdAt.getTime()),
        },
        newUser: result.newUser,
      });
    }),
    verifyToken: verifyTokenMethod(useCases.verifyToken, log),
    refresh: guard(
      "Refresh",
      async (req): Promise<RefreshResponse> =>
        create(RefreshResponseSchema, { tokens: toTokenPair(await useCases.refresh(req.refreshToken)) }),
    ),
    logout: guard("Logout", async (req): Promise<LogoutResponse> => {
      await useCases.logout({
        accessToken: req.accessToken,
        refreshToken: req.refreshToken,
        allSessions: req.allSessions,
      });
      return create(LogoutResponseSchema);
    }),
    checkSessionKey: guard("CheckSessionKey", async (req): Promise<CheckSessionKeyResponse> => {
      await useCases.checkSessionKey(req.accessToken);
      return create(CheckSessionKeyResponseSchema);
    }),
    getPhoneNumber: guard(
      "GetPhoneNumber",
      async (req): Promise<GetPhoneNumberResponse> =>
        create(
          GetPhoneNumberResponseSchema,
          await useCases.getPhoneNumber({
            accessToken: req.accessToken,
            phoneCode: req.phoneCode,
            bind: req.bind,
          }),
        ),
    ),
    decryptUserData: guard("DecryptUserData", async (req): Promise<DecryptUserDataResponse> => {
      const result = await useCases.decryptUserData({
        accessToken: req.accessToken,
        encryptedData: req.encryptedData,
        iv: req.iv,
        rawData: req.rawData,
        signature: req.signature,
        maxAgeSeconds: req.maxAgeSeconds,
      });
      return create(DecryptUserDataResponseSchema, {
        data: result.data as JsonObject,
        json: result.json,
        watermark: {
          appId: result.watermark.appId,
          timestamp: timestampFromMs(result.watermark.timestamp * 1000),
        },
      });
    }),
  };
}

function toTokenPair(tokens: IssuedTokens) {
  return create(TokenPairSchema, {
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    tokenType: "Bearer",
    accessTokenExpiresAt: timestampFromMs(tokens.accessClaims.expiresAt * 1000),
    refreshTokenExpiresAt: timestampFromMs(tokens.refreshTokenExpiresAt.getTime()),
  });
}

function toClaimsMessage(claims: AccessClaims) {
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
