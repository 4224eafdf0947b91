import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  CheckSessionKeyRequestSchema,
  LoginRequestSchema,
  RefreshRequestSchema,
  VerifyTokenRequestSchema,
} from "../../src/gen/identity/v1/identity_pb.js";
import { stringFieldsDecoder } from "../../src/wire/grpc-method.js";

const decode = stringFieldsDecoder(VerifyTokenRequestSchema) as (bytes: Buffer) => unknown;

/** The reference: what protobuf-es makes of the bytes, or the fact that it throws. */
function reference(bytes: Buffer): unknown {
  try {
    return fromBinary(VerifyTokenRequestSchema, bytes);
  } catch {
    return "throws";
  }
}
function ours(bytes: Buffer): unknown {
  try {
    return decode(bytes);
  } catch {
    return "throws";
  }
}

describe("the string-fields request decoder", () => {
  it("applies only to messages made of plain string fields", () => {
    expect(stringFieldsDecoder(VerifyTokenRequestSchema)).toBeTypeOf("function");
    expect(stringFieldsDecoder(CheckSessionKeyRequestSchema)).toBeTypeOf("function");
    expect(stringFieldsDecoder(LoginRequestSchema)).toBeUndefined(); // has a message field
    expect(stringFieldsDecoder(RefreshRequestSchema)).toBeUndefined();
  });

  it("gives exactly what fromBinary gives, for valid and invalid bytes alike", () => {
    const encode = (accessToken: string) =>
      Buffer.from(toBinary(VerifyTokenRequestSchema, create(VerifyTokenRequestSchema, { accessToken })));
    const samples: Buffer[] = [
      Buffer.alloc(0),
      encode(""),
      encode("a"),
      encode("x".repeat(127)),
      encode("x".repeat(128)), // a two-byte length
      encode("y".repeat(20_000)), // a three-byte length
      encode("令牌-🔑-\u{feff}"),
      Buffer.concat([encode("first"), encode("second")]), // the last occurrence wins
      Buffer.concat([encode("t"), Buffer.from([0x10, 0x01])]), // an unknown varint field
      Buffer.concat([encode("t"), Buffer.from([0x12, 0x01, 0x41])]), // an unknown string field
      Buffer.from([0x08, 0x01]), // field 1 with the wrong wire type
      Buffer.from([0x0a, 0x05, 0x41]), // a length past the end
      Buffer.from([0x0a, 0x80]), // a truncated length
      Buffer.from([0x0a, 0x02, 0xc3, 0x28]), // invalid UTF-8
      Buffer.from([0x0a, 0x01, 0xff]),
      Buffer.from([0x00]), // field number 0
      Buffer.from([0x8a, 0x01, 0x01, 0x41]), // a two-byte tag (field 17)
    ];
    for (let i = 0; i < 300; i++) {
      const length = Math.floor(Math.random() * 8);
      samples.push(Buffer.from(Array.from({ length }, () => Math.floor(Math.random() * 256))));
    }
    for (const bytes of samples) expect(ours(bytes), bytes.toString("hex")).toEqual(reference(bytes));
  });
});
