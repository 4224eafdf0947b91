import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type DecryptUserDataRequest,
  type DecryptUserDataResponse,
  DecryptUserDataResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { DecryptUserData } from "../../identity/decrypt-user-data.js";

export const decryptUserDataRpc =
  (decryptUserData: DecryptUserData) =>
  async (req: DecryptUserDataRequest): Promise<DecryptUserDataResponse> => {
    const result = await decryptUserData({
      accessToken: req.accessToken,
      encryptedData: req.encryptedData,
      iv: req.iv,
      rawData: req.rawData,
      signature: req.signature,
      maxAgeMs: req.maxAgeSeconds * 1000,
    });
    return create(DecryptUserDataResponseSchema, {
      data: result.data as JsonObject,
      json: result.json,
      watermark: {
        appId: result.watermark.appId,
        timestamp: timestampFromMs(result.watermark.timestamp * 1000),
      },
    });
  };
