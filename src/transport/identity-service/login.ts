import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  type LoginRequest,
  type LoginResponse,
  LoginResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { Login } from "../../identity/login.js";
import { callerAddressKey } from "../caller-address.js";
import { deadlineOf, fromClientInfo, toTokenPair, toUserMessage } from "./messages.js";

export const loginRpc =
  (login: Login) =>
  async (req: LoginRequest, context: HandlerContext): Promise<LoginResponse> => {
    const { tokens, user, permissions, newUser } = await login({
      appId: req.appId,
      code: req.code,
      attemptId: req.attemptId,
      callerAddress: context.values.get(callerAddressKey),
      deadlineAt: deadlineOf(context),
      client: fromClientInfo(req.client),
    });
    return create(LoginResponseSchema, {
      tokens: toTokenPair(tokens),
      user: toUserMessage(user, permissions),
      newUser,
    });
  };
