/** What callers of the identity service import: `wechat-identity/client`. */
export { createIdentityClient, type IdentityClient } from "./identity-client.js";
export {
  createLocalVerifier,
  type LocalVerifier,
  type LocalVerifierLag,
  type LocalVerifierOptions,
} from "./local-verifier.js";
export {
  createVerifier,
  reasonOfGrpcError,
  requirePermission,
  userHasPermission,
  type VerifiedUser,
  type Verifier,
  type VerifierOptions,
  VerifyError,
} from "./verifier.js";
