import { create } from "@bufbuild/protobuf";
import type { AccessClaims } from "../../domain/tokens.js";
import {
  type VerifyTokenRequest,
  type VerifyTokenResponse,
  VerifyTokenResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { VerifyToken } from "../../identity/verify-token.js";
import { toClaimsMessage } from "./messages.js";

/**
 * VerifyToken's mapping, synchronous end to end. VerifyToken hands back the same claims object
 * for a cached token, so the same response message goes out again (and the gRPC adapter reuses
 * its encoding).
 */
export function verifyTokenRpc(verifyToken: VerifyToken) {
  const responses = new WeakMap<AccessClaims, VerifyTokenResponse>();
  return (req: VerifyTokenRequest): VerifyTokenResponse => {
    const claims = verifyToken.verify(req.accessToken, req.expectedAppId);
    let response = responses.get(claims);
    if (!response) {
      response = create(VerifyTokenResponseSchema, { claims: toClaimsMessage(claims) });
      responses.set(claims, response);
    }
    return response;
  };
}
