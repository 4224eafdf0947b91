import type { ServiceImpl } from "@connectrpc/connect";
import type { IdentityService } from "../../gen/identity/v1/identity_pb.js";
import type { UseCases } from "../../identity/use-cases.js";
import type { Logger } from "../../util/logger.js";
import { checkSessionKeyRpc } from "./check-session-key.js";
import { decryptUserDataRpc } from "./decrypt-user-data.js";
import { getPhoneNumberRpc } from "./get-phone-number.js";
import { guarded } from "./guard.js";
import { loginRpc } from "./login.js";
import { logoutRpc } from "./logout.js";
import { refreshRpc } from "./refresh.js";
import { verifyTokenRpc } from "./verify-token.js";

export type IdentityServiceImpl = ServiceImpl<typeof IdentityService>;

/**
 * The IdentityService, written once and mounted on both transports. Each RPC's file maps the
 * request to its use case's input and the result to the response; errors go through the one
 * table in wire/errors.ts.
 */
export function createIdentityServiceImpl(useCases: UseCases, log: Logger): IdentityServiceImpl {
  return {
    login: guarded(log, "Login", loginRpc(useCases.login)),
    refresh: guarded(log, "Refresh", refreshRpc(useCases.refresh)),
    logout: guarded(log, "Logout", logoutRpc(useCases.logout)),
    verifyToken: guarded(log, "VerifyToken", verifyTokenRpc(useCases.verifyToken)),
    decryptUserData: guarded(log, "DecryptUserData", decryptUserDataRpc(useCases.decryptUserData)),
    getPhoneNumber: guarded(log, "GetPhoneNumber", getPhoneNumberRpc(useCases.getPhoneNumber)),
    checkSessionKey: guarded(log, "CheckSessionKey", checkSessionKeyRpc(useCases.checkSessionKey)),
  };
}
