import { create } from "@bufbuild/protobuf";
import {
  type RefreshRequest,
  type RefreshResponse,
  RefreshResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { Refresh } from "../../identity/refresh.js";
import { toTokenPair } from "./messages.js";

export const refreshRpc =
  (refresh: Refresh) =>
  async (req: RefreshRequest): Promise<RefreshResponse> =>
    create(RefreshResponseSchema, { tokens: toTokenPair(await refresh(req.refreshToken)) });
