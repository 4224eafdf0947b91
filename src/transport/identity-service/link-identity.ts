import { create } from "@bufbuild/protobuf";
import type { LinkIdentity, LinkProof } from "../../accounts/link-identity.js";
import { invalidArgument } from "../../domain/errors.js";
import {
  type LinkIdentityRequest,
  type LinkIdentityResponse,
  LinkIdentityResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import { fromClientInfo } from "./messages.js";

/** The oneof as the use case's proof (the proto rules require one). */
function proofOf(proof: LinkIdentityRequest["proof"]): LinkProof {
  switch (proof.case) {
    case "wechat":
      return { kind: "wechat", appId: proof.value.appId, code: proof.value.code };
    case "phoneCode":
      return { kind: "phone", phoneCode: proof.value };
    case "password":
      return { kind: "password", username: proof.value.username, password: proof.value.password };
    default:
      throw invalidArgument("proof", "give one of wechat, phone_code, password");
  }
}

export const linkIdentityRpc =
  (linkIdentity: LinkIdentity) =>
  async (req: LinkIdentityRequest): Promise<LinkIdentityResponse> => {
    const { linked } = await linkIdentity({
      accessToken: req.accessToken,
      proof: proofOf(req.proof),
      client: fromClientInfo(req.client),
    });
    return create(LinkIdentityResponseSchema, { linked });
  };
