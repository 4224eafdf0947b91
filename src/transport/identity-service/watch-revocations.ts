import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  PublicSigningKeySchema,
  RevokedSessionSchema,
  type WatchRevocationsRequest,
  type WatchRevocationsResponse,
  WatchRevocationsResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { RevocationMessage, RevocationStream } from "../../revocation/revocation-stream.js";

/** WatchRevocations' mapping: the instance's revocation stream, message by message. */
export function watchRevocationsRpc(stream: Pick<RevocationStream, "watch">) {
  // A revocation goes to every subscriber as the same message object: mapped once here, and
  // encoded once by the gRPC port (its serializer keeps the bytes of a message it has seen).
  const mapped = new WeakMap<RevocationMessage, WatchRevocationsResponse>();
  return async function* (req: WatchRevocationsRequest, context: HandlerContext) {
    for await (const message of stream.watch(req.after, context.signal)) {
      let response = mapped.get(message);
      if (!response) {
        response = toResponse(message);
        mapped.set(message, response);
      }
      yield response;
    }
  };
}

function toResponse(message: RevocationMessage): WatchRevocationsResponse {
  return create(WatchRevocationsResponseSchema, {
    position: message.position,
    reset: message.reset,
    snapshotComplete: message.snapshotComplete,
    revoked: message.revoked.map(([sessionId, forgetAfterMs, staleBeforeMs]) =>
      create(RevokedSessionSchema, {
        sessionId,
        forgetAfterMs: BigInt(forgetAfterMs),
        staleBeforeMs: BigInt(staleBeforeMs ?? 0),
      }),
    ),
    keys: (message.keys ?? []).map((key) =>
      create(PublicSigningKeySchema, {
        kid: key.kid,
        alg: key.alg,
        kty: key.publicJwk.kty ?? "",
        crv: key.publicJwk.crv ?? "",
        x: key.publicJwk.x ?? "",
        y: key.publicJwk.y ?? "",
        activatesAtMs: BigInt(key.activatesAt.getTime()),
        retiresAtMs: BigInt(key.retiresAt?.getTime() ?? 0),
      }),
    ),
  });
}
