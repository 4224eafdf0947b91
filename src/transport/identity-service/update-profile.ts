import { create } from "@bufbuild/protobuf";
import {
  type UpdateProfileRequest,
  type UpdateProfileResponse,
  UpdateProfileResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { UpdateProfile } from "../../identity/update-profile.js";
import { toUserMessage } from "./messages.js";

export const updateProfileRpc =
  (updateProfile: UpdateProfile) =>
  async (req: UpdateProfileRequest): Promise<UpdateProfileResponse> => {
    const { user, permissions } = await updateProfile({
      accessToken: req.accessToken,
      nickname: req.nickname,
      avatarUrl: req.avatarUrl,
    });
    return create(UpdateProfileResponseSchema, { user: toUserMessage(user, permissions) });
  };
