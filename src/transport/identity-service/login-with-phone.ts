import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  type LoginWithPhoneRequest,
  type LoginWithPhoneResponse,
  LoginWithPhoneResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { Login } from "../../identity/login.js";
import { callerAddressKey } from "../caller-address.js";
import { deadlineOf, fromClientInfo, toTokenPair, toUserMessage } from "./messages.js";

/** LoginWithPhone is Login with the getPhoneNumber button's code. */
export const loginWithPhoneRpc =
  (login: Login) =>
  async (req: LoginWithPhoneRequest, context: HandlerContext): Promise<LoginWithPhoneResponse> => {
    const { tokens, user, permissions, newUser } = await login({
      appId: req.appId,
      code: req.code,
      phoneCode: req.phoneCode,
      attemptId: req.attemptId,
      callerAddress: context.values.get(callerAddressKey),
      deadlineAt: deadlineOf(context),
      client: fromClientInfo(req.client),
    });
    return create(LoginWithPhoneResponseSchema, {
      tokens: toTokenPair(tokens),
      user: toUserMessage(user, permissions),
      newUser,
    });
  };
