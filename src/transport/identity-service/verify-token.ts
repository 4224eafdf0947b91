import { create } from "@bufbuild/protobuf";
import { LRUCache } from "lru-cache";
import type { AccessClaims } from "../../domain/tokens.js";
import {
  type VerifyTokenRequest,
  type VerifyTokenResponse,
  VerifyTokenResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import { type VerifyToken, verifyCacheShares } from "../../identity/verify-token.js";
import { toClaimsMessage } from "./messages.js";

/**
 * An answer kept ready: the VerifyTokenResponse's objects and, on the gRPC port, its encoding with
 * its buffer. Measured with `npm run bench:token-cache` (~800 bytes on the gRPC port).
 */
export const KEPT_RESPONSE_BYTES = 800;

/**
 * VerifyToken's mapping, synchronous end to end. VerifyToken hands back the same claims object
 * for a cached token, so for the most used tokens the same response message goes out again (and
 * the gRPC adapter reuses its encoding). The answers are kept in an LRU of their own, within
 * their share of VERIFY_CACHE_BYTES: keeping one beside every cached token doubled an entry's cost.
 */
export function verifyTokenRpc(verifyToken: VerifyToken, cacheBytes: number) {
  const responses = new LRUCache<AccessClaims, VerifyTokenResponse>({
    maxSize: verifyCacheShares(cacheBytes).answers,
    sizeCalculation: () => KEPT_RESPONSE_BYTES,
  });
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
