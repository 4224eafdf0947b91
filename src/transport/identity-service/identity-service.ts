import type { ServiceImpl } from "@connectrpc/connect";
import { IdentityService } from "../../gen/identity/v1/identity_pb.js";
import type { UseCases } from "../../identity/use-cases.js";
import type { Logger } from "../../observability/logger.js";
import type { RevocationStream } from "../../revocation/revocation-stream.js";
import { checkSessionKeyRpc } from "./check-session-key.js";
import { decryptUserDataRpc } from "./decrypt-user-data.js";
import { getPhoneNumberRpc } from "./get-phone-number.js";
import { type GuardOptions, guarded, guardedStream } from "./guard.js";
import { linkIdentityRpc } from "./link-identity.js";
import { loginRpc } from "./login.js";
import { loginWithPasswordRpc } from "./login-with-password.js";
import { loginWithPhoneRpc } from "./login-with-phone.js";
import { logoutRpc } from "./logout.js";
import { refreshRpc } from "./refresh.js";
import { updateProfileRpc } from "./update-profile.js";
import { endSessionRpc, listSessionsRpc } from "./user-sessions.js";
import { verifyTokenRpc } from "./verify-token.js";
import { watchRevocationsRpc } from "./watch-revocations.js";

export type IdentityServiceImpl = ServiceImpl<typeof IdentityService>;

/**
 * The IdentityService, written once and mounted on both transports. Each RPC's file maps the
 * request to its use case's input and the result to the response; errors go through the one
 * table in wire/errors.ts.
 */
export function createIdentityServiceImpl(
  useCases: UseCases,
  log: Logger,
  options: GuardOptions & {
    /** VERIFY_CACHE_BYTES: VerifyToken keeps its answers for the most used tokens within a share of it. */
    verifyCacheBytes: number;
    /** What WatchRevocations streams on this port. */
    revocationStream: Pick<RevocationStream, "watch">;
  },
): IdentityServiceImpl {
  return {
    login: guarded(log, IdentityService.method.login, loginRpc(useCases.login), options),
    watchRevocations: guardedStream(
      log,
      IdentityService.method.watchRevocations,
      watchRevocationsRpc(options.revocationStream),
      options,
    ),
    refresh: guarded(log, IdentityService.method.refresh, refreshRpc(useCases.refresh), options),
    logout: guarded(log, IdentityService.method.logout, logoutRpc(useCases.logout), options),
    verifyToken: guarded(
      log,
      IdentityService.method.verifyToken,
      verifyTokenRpc(useCases.verifyToken, options.verifyCacheBytes),
      options,
    ),
    decryptUserData: guarded(
      log,
      IdentityService.method.decryptUserData,
      decryptUserDataRpc(useCases.decryptUserData),
      options,
    ),
    getPhoneNumber: guarded(
      log,
      IdentityService.method.getPhoneNumber,
      getPhoneNumberRpc(useCases.getPhoneNumber),
      options,
    ),
    checkSessionKey: guarded(
      log,
      IdentityService.method.checkSessionKey,
      checkSessionKeyRpc(useCases.checkSessionKey),
      options,
    ),
    listSessions: guarded(
      log,
      IdentityService.method.listSessions,
      listSessionsRpc(useCases.userSessions),
      options,
    ),
    endSession: guarded(
      log,
      IdentityService.method.endSession,
      endSessionRpc(useCases.userSessions),
      options,
    ),
    updateProfile: guarded(
      log,
      IdentityService.method.updateProfile,
      updateProfileRpc(useCases.updateProfile),
      options,
    ),
    loginWithPassword: guarded(
      log,
      IdentityService.method.loginWithPassword,
      loginWithPasswordRpc(useCases.loginWithPassword),
      options,
    ),
    loginWithPhone: guarded(
      log,
      IdentityService.method.loginWithPhone,
      loginWithPhoneRpc(useCases.login),
      options,
    ),
    linkIdentity: guarded(
      log,
      IdentityService.method.linkIdentity,
      linkIdentityRpc(useCases.linkIdentity),
      options,
    ),
  };
}
