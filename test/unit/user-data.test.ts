import { createCipheriv, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { IdentityError } from "../../src/domain/errors.js";
import {
  decodeDamagedBase64,
  decryptWithKey,
  rawDataSignature,
  sessionKeySignature,
  signatureMatches,
} from "../../src/domain/user-data.js";

const KEY = "HyVFkGl5F5OQWJZZaNzBBg==";

function encrypt(plaintext: string, key = KEY) {
  const iv = randomBytes(16);
  const cipher = createCipheriv("aes-128-cbc", Buffer.from(key, "base64"), iv);
  return { iv, data: Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]) };
}

describe("WeChat user data", () => {
  it("computes WeChat's documented rawData signature (docs/wechat.md) and compares it in constant time", () => {
    const rawData =
      '{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}';
    const signature = rawDataSignature(rawData, KEY);
    expect(signature).toBe("75e81ceda165f4ffa64f4068af58c64b8f54b88c");
    expect(signatureMatches("75E81CEDA165F4FFA64F4068AF58C64B8F54B88C", signature)).toBe(true);
    expect(signatureMatches("75e81ceda165f4ffa64f4068af58c64b8f54b88d", signature)).toBe(false);
    expect(signatureMatches("75e81ced", signature)).toBe(false);
  });

  it("signs for checksession as WeChat documents: hmac_sha256 keyed with the session_key text", () => {
    expect(sessionKeySignature("o0q0otL8aEzpcZL/FT9WsQ==", '{"foo":"bar"}')).toBe(
      "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b",
    );
    expect(sessionKeySignature("o0q0otL8aEzpcZL/FT9WsQ==")).toMatch(/^[0-9a-f]{64}$/); // checksession signs ""
  });

  it("repairs base64 damaged in transit", () => {
    const bytes = Buffer.from([0xfb, 0xef, 0xbe, 0xff, 0x00, 0x10, 0x3e, 0x3f]); // + and / in base64
    const clean = bytes.toString("base64");
    expect(clean).toMatch(/[+/]/);
    const damaged = [
      clean,
      clean.replaceAll("+", " "), // form decoding turned + into spaces
      encodeURIComponent(clean), // URL-encoded
      `${clean.slice(0, 4)}\r\n${clean.slice(4)}\n`, // line breaks
      encodeURIComponent(clean).replace(/%2B/, "%2\nB"), // a line break inside a %XX escape
      bytes.toString("base64url"), // the URL-safe alphabet, no padding
    ];
    for (const text of damaged) expect(decodeDamagedBase64("iv", text), JSON.stringify(text)).toEqual(bytes);
  });

  it("names the field and the problem when base64 cannot be repaired", () => {
    const reasonOf = (text: string) => {
      try {
        decodeDamagedBase64("encrypted_data", text);
      } catch (err) {
        return err instanceof IdentityError ? [err.reason, err.metadata.field, err.message] : err;
      }
      return "decoded";
    };
    expect(reasonOf("abc$def")).toEqual([
      "BAD_BASE64",
      "encrypted_data",
      expect.stringContaining("characters"),
    ]);
    expect(reasonOf("abcde")).toEqual(["BAD_BASE64", "encrypted_data", expect.stringContaining("length")]);
    expect(reasonOf("%E0%A4%A")).toEqual(["BAD_BASE64", "encrypted_data", expect.stringContaining("URL")]);
    expect(reasonOf("")).toEqual(["BAD_BASE64", "encrypted_data", expect.stringContaining("empty")]);
  });

  it("decrypts AES-128-CBC with PKCS#7 and a watermark, and gives nothing for a wrong key or padding", () => {
    const json = '{"openId":"o1","watermark":{"appid":"wxa","timestamp":1700000000}}';
    const { iv, data } = encrypt(json);
    expect(decryptWithKey(KEY, iv, data)).toEqual({
      json,
      data: JSON.parse(json),
      watermark: { appId: "wxa", timestamp: 1700000000 },
    });
    expect(decryptWithKey("AAAAAAAAAAAAAAAAAAAAAA==", iv, data)).toBeUndefined(); // another key
    const tampered = Buffer.from(data);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1; // breaks the padding
    expect(decryptWithKey(KEY, iv, tampered)).toBeUndefined();
    expect(decryptWithKey(KEY, iv, data.subarray(0, 20))).toBeUndefined(); // not whole blocks
    expect(decryptWithKey(KEY, iv, encrypt('{"no":"watermark"}').data)).toBeUndefined();
    expect(decryptWithKey(KEY, iv, encrypt("[1,2]").data)).toBeUndefined();
  });
});
