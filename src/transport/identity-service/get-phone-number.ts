import { create } from "@bufbuild/protobuf";
import {
  type GetPhoneNumberRequest,
  type GetPhoneNumberResponse,
  GetPhoneNumberResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { GetPhoneNumber } from "../../identity/get-phone-number.js";

export const getPhoneNumberRpc =
  (getPhoneNumber: GetPhoneNumber) =>
  async (req: GetPhoneNumberRequest): Promise<GetPhoneNumberResponse> =>
    create(
      GetPhoneNumberResponseSchema,
      await getPhoneNumber({ accessToken: req.accessToken, phoneCode: req.phoneCode, bind: req.bind }),
    );
