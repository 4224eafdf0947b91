import { create } from "@bufbuild/protobuf";
import {
  type LogoutRequest,
  type LogoutResponse,
  LogoutResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { Logout } from "../../identity/logout.js";

export const logoutRpc =
  (logout: Logout) =>
  async (req: LogoutRequest): Promise<LogoutResponse> => {
    await logout({
      accessToken: req.accessToken,
      refreshToken: req.refreshToken,
      allSessions: req.allSessions,
    });
    return create(LogoutResponseSchema);
  };
