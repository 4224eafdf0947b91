import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import {
  type LoginRequest,
  type LoginResponse,
  LoginResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { Login } from "../../identity/login.js";
import { callerAddressKey } from "../caller-address.js";
import { deadlineOf, fromClientInfo, toTokenPair } from "./messages.js";

export const loginRpc =
  (login: Login) =>
  async (req: LoginRequest, context: HandlerContext): Promise<LoginResponse> => {
    const { tokens, user, newUser } = await login({
      appId: req.appId,
      code: req.code,
      attemptId: req.attemptId,
      callerAddress: context.values.get(callerAddressKey),
      deadlineAt: deadlineOf(context),
      client: fromClientInfo(req.client),
    });
    return create(LoginResponseSchema, {
      tokens: toTokenPair(tokens),
      user: {
        id: user.id,
        appId: user.appId,
        openid: user.openid,
        unionid: user.unionid ?? "",
        roles: user.roles,
        phoneNumber: user.phoneNumber ?? "",
        createdAt: timestampFromMs(user.createdAt.getTime()),
      },
      newUser,
    });
  };
