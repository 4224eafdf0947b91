import { isUtf8 } from "node:buffer";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  ScalarType,
  toBinary,
} from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";

/**
 * grpc-js method definitions on protobuf-es messages, for the server's adapter and the verifier
 * client alike.
 */

/** What requestDeserialize returns for bytes that are not a valid message (answered, not thrown). */
export const UNDECODABLE = Symbol("undecodable");

/**
 * A decoder for messages whose fields are all plain strings (VerifyTokenRequest, RefreshRequest),
 * or undefined for other messages. It reads the wire format directly into a message object and
 * leaves anything unusual (another field, a wire type, invalid UTF-8, a truncated length) to
 * protobuf-es's fromBinary, which then decides, so the result is always what fromBinary gives.
 * It serves the VerifyToken hot path (docs/benchmarks.md).
 */
export function stringFieldsDecoder(schema: DescMessage): ((bytes: Buffer) => unknown) | undefined {
  const fields = new Map<number, string>();
  for (const field of schema.fields) {
    if (field.fieldKind !== "scalar" || field.scalar !== ScalarType.STRING || field.oneof) return undefined;
    fields.set(field.number, field.localName);
  }
  const template = create(schema) as Record<string, unknown>;
  const slow = (bytes: Buffer) => fromBinary(schema, bytes);

  return (bytes) => {
    const message = { ...template };
    let at = 0;
    while (at < bytes.length) {
      const tag = bytes[at++] as number; // field numbers below 16 fit one byte
      const name = tag & 0x80 || (tag & 7) !== 2 ? undefined : fields.get(tag >>> 3);
      if (name === undefined) return slow(bytes);
      let length = 0;
      for (let shift = 0; ; shift += 7) {
        if (at >= bytes.length || shift > 21) return slow(bytes);
        const byte = bytes[at++] as number;
        length |= (byte & 0x7f) << shift;
        if (!(byte & 0x80)) break;
      }
      const end = at + length;
      if (end > bytes.length || !isUtf8(bytes.subarray(at, end))) return slow(bytes);
      message[name] = bytes.toString("utf8", at, end);
      at = end;
    }
    return message;
  };
}

/** A grpc-js method definition whose (de)serializers are protobuf-es's, for any method kind. */
export function grpcMethodDefinition(
  service: DescService,
  method: DescMethod,
): grpc.MethodDefinition<unknown, unknown> {
  const encoded = new WeakMap<object, Buffer>();
  const decodeRequest =
    stringFieldsDecoder(method.input) ?? ((bytes: Buffer) => fromBinary(method.input, bytes));
  return {
    path: `/${service.typeName}/${method.name}`,
    originalName: method.localName,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    // biome-ignore lint/suspicious/noExplicitAny: grpc-js passes messages untyped
    requestSerialize: (message: any) => Buffer.from(toBinary(method.input, message)),
    requestDeserialize: (bytes: Buffer) => {
      try {
        return decodeRequest(bytes);
      } catch {
        return UNDECODABLE;
      }
    },
    // biome-ignore lint/suspicious/noExplicitAny: grpc-js passes messages untyped
    responseSerialize: (message: any) => {
      // A handler that answers with the same (unchanged) message object again, like VerifyToken
      // for a cached token, gets its encoding reused.
      let bytes = encoded.get(message);
      if (!bytes) {
        // A view of toBinary's own exact-size buffer, kept as long as the message: Buffer.from(bytes)
        // would copy into a slice of Node's shared 8 KB pool, and a kept slice keeps its whole slab.
        const binary = toBinary(method.output, message);
        bytes = Buffer.from(binary.buffer, binary.byteOffset, binary.byteLength);
        encoded.set(message, bytes);
      }
      return bytes;
    },
    responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
  };
}
