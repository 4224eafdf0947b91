import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import type { LoginWithPassword } from "../../accounts/login-with-password.js";
import {
  type LoginWithPasswordRequest,
  type LoginWithPasswordResponse,
  LoginWithPasswordResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import { callerAddressKey } from "../caller-address.js";
import { fromClientInfo, toTokenPair, toUserMessage } from "./messages.js";

export const loginWithPasswordRpc =
  (loginWithPassword: LoginWithPassword) =>
  async (req: LoginWithPasswordRequest, context: HandlerContext): Promise<LoginWithPasswordResponse> => {
    const { tokens, user, permissions } = await loginWithPassword({
      username: req.username,
      password: req.password,
      client: fromClientInfo(req.client),
      callerAddress: context.values.get(callerAddressKey),
    });
    return create(LoginWithPasswordResponseSchema, {
      tokens: toTokenPair(tokens),
      user: toUserMessage(user, permissions),
    });
  };
