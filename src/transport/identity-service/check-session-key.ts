import { create } from "@bufbuild/protobuf";
import {
  type CheckSessionKeyRequest,
  type CheckSessionKeyResponse,
  CheckSessionKeyResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { CheckSessionKey } from "../../identity/check-session-key.js";

export const checkSessionKeyRpc =
  (checkSessionKey: CheckSessionKey) =>
  async (req: CheckSessionKeyRequest): Promise<CheckSessionKeyResponse> => {
    await checkSessionKey(req.accessToken);
    return create(CheckSessionKeyResponseSchema);
  };
