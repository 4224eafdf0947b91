import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  type RefreshRequest,
  type RefreshResponse,
  RefreshResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { Refresh } from "../../identity/refresh.js";
import { callerAddressKey } from "../caller-address.js";
import { deadlineOf, fromClientInfo, toTokenPair } from "./messages.js";

export const refreshRpc =
  (refresh: Refresh) =>
  async (req: RefreshRequest, context: HandlerContext): Promise<RefreshResponse> => {
    const tokens = await refresh(req.refreshToken, {
      client: fromClientInfo(req.client),
      callerAddress: context.values.get(callerAddressKey),
      deadlineAt: deadlineOf(context),
    });
    return create(RefreshResponseSchema, { tokens: toTokenPair(tokens) });
  };
