import { createHmac, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import { createLocalJWKSet, jwtVerify, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { IdentityError } from "../../src/domain/errors.js";
import {
  hashRefreshToken,
  isHighS,
  MAX_ACCESS_TOKEN_LENGTH,
  newRefreshToken,
  signAccessToken,
  toLowS,
  verifyAccessToken,
} from "../../src/domain/tokens.js";

const settings = { issuer: "iss-test", audience: "aud-test", accessTokenTtlMs: 3600_000, leewayMs: 5000 };
const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const keys = new Map<string, KeyObject>([["k1", publicKey]]);
const NOW = Date.UTC(2026, 0, 1);
const subject = {
  userId: "u1",
  sessionId: "s1",
  appId: "wxapp",
  openid: "o1",
  unionid: "",
  roles: ["member"],
  permissions: ["order:read:own"],
};

function issue(nowMs = NOW) {
  return signAccessToken(settings, { kid: "k1", privateKey }, subject, nowMs).token;
}

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof IdentityError) return err.reason;
    throw err;
  }
  throw new Error("expected an IdentityError");
}

const b64 = (value: unknown) =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** A token with our real signature over a header and payload of the test's choosing. */
function signed(header: Record<string, unknown>, payload: Record<string, unknown>) {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = toLowS(sign("sha256", Buffer.from(input), { key: privateKey, dsaEncoding: "ieee-p1363" }));
  return `${input}.${sig.toString("base64url")}`;
}

const goodHeader = { alg: "ES256", typ: "at+jwt", kid: "k1" };
const goodPayload = {
  iss: "iss-test",
  aud: "aud-test",
  sub: "u1",
  sid: "s1",
  jti: "j1",
  appid: "wxapp",
  openid: "o1",
  iat: NOW / 1000,
  exp: NOW / 1000 + 600,
};

describe("access tokens", () => {
  it("verify what they sign, with every claim", () => {
    const claims = verifyAccessToken(settings, keys, issue(), NOW);
    expect(claims).toMatchObject({ ...subject, issuedAt: NOW / 1000, expiresAt: NOW / 1000 + 3600 });
    expect(claims.tokenId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("are standard JWTs that jose verifies against our JWKS (offline verifiers)", async () => {
    const jwk = { ...publicKey.export({ format: "jwk" }), kid: "k1", alg: "ES256", use: "sig" };
    const { payload, protectedHeader } = await jwtVerify(
      issue(Date.now()),
      createLocalJWKSet({ keys: [jwk] }),
      {
        issuer: "iss-test",
        audience: "aud-test",
        typ: "at+jwt",
      },
    );
    expect(protectedHeader.kid).toBe("k1");
    expect(payload.sub).toBe("u1");
  });

  it("accept a hand-built token with the same claims (the check is not tied to our encoder)", () => {
    expect(verifyAccessToken(settings, keys, signed(goodHeader, goodPayload), NOW).sessionId).toBe("s1");
  });

  it("expire after exp, with the configured leeway", () => {
    const token = issue();
    expect(verifyAccessToken(settings, keys, token, NOW + 3600_000 + 4_000).userId).toBe("u1");
    expect(reasonOf(() => verifyAccessToken(settings, keys, token, NOW + 3600_000 + 5_000))).toBe(
      "TOKEN_EXPIRED",
    );
  });

  it("refuse a flipped bit anywhere", () => {
    const token = issue();
    for (let i = 0; i < token.length; i++) {
      if (token[i] === ".") continue;
      const chars = token.split("");
      const c = chars[i] as string;
      chars[i] = c === "A" ? "B" : c === "a" ? "b" : "A";
      const tampered = chars.join("");
      expect(() => verifyAccessToken(settings, keys, tampered, NOW), `position ${i}`).toThrow(IdentityError);
    }
  });

  it("sign in the low-S form only, and refuse the high-S twin of a genuine signature", () => {
    const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
    for (let i = 0; i < 50; i++) {
      const token = issue();
      const signature = Buffer.from(token.slice(token.lastIndexOf(".") + 1), "base64url");
      expect(isHighS(signature)).toBe(false);
      const s = BigInt(`0x${signature.subarray(32).toString("hex")}`);
      const twin = Buffer.concat([
        signature.subarray(0, 32),
        Buffer.from((P256_ORDER - s).toString(16).padStart(64, "0"), "hex"),
      ]);
      // The twin is a valid ECDSA signature of the same input: only the low-S rule refuses it.
      const input = token.slice(0, token.lastIndexOf("."));
      expect(verify("sha256", Buffer.from(input), { key: publicKey, dsaEncoding: "ieee-p1363" }, twin)).toBe(
        true,
      );
      expect(
        reasonOf(() => verifyAccessToken(settings, keys, `${input}.${twin.toString("base64url")}`, NOW)),
      ).toBe("TOKEN_INVALID");
    }
  });

  it("refuse a signature in non-canonical base64url (same bytes, other text)", () => {
    const token = issue();
    const last = token.at(-1) as string;
    // The last of 86 characters carries 2 bits; changing only the unused low bits keeps the bytes.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const index = alphabet.indexOf(last);
    const sibling = alphabet[(index & ~0xf) | ((index + 1) & 0xf)] as string;
    expect(Buffer.from(token.slice(token.lastIndexOf(".") + 1).slice(0, -1) + sibling, "base64url")).toEqual(
      Buffer.from(token.slice(token.lastIndexOf(".") + 1), "base64url"),
    );
    expect(reasonOf(() => verifyAccessToken(settings, keys, token.slice(0, -1) + sibling, NOW))).toBe(
      "TOKEN_INVALID",
    );
  });

  it.each([
    ["alg none", { ...goodHeader, alg: "none" }],
    ["alg NoNe", { ...goodHeader, alg: "NoNe" }],
    ["alg NONE", { ...goodHeader, alg: "NONE" }],
    ["alg nOnE", { ...goodHeader, alg: "nOnE" }],
    ["alg es256 (case matters)", { ...goodHeader, alg: "es256" }],
    ["alg ES384 (not our key's)", { ...goodHeader, alg: "ES384" }],
    ["alg RS256 (not our key's)", { ...goodHeader, alg: "RS256" }],
    ["alg EdDSA (not our key's)", { ...goodHeader, alg: "EdDSA" }],
    ["alg missing", { typ: "at+jwt", kid: "k1" }],
    ["typ JWT", { ...goodHeader, typ: "JWT" }],
    ["typ missing", { alg: "ES256", kid: "k1" }],
    ["kid unknown", { ...goodHeader, kid: "k2" }],
    ["kid missing", { alg: "ES256", typ: "at+jwt" }],
    ["kid very long", { ...goodHeader, kid: "k".repeat(10_000) }],
    ["kid path-like", { ...goodHeader, kid: "../../etc/passwd" }],
    ["kid not a string", { ...goodHeader, kid: 1 }],
    ["kid empty", { ...goodHeader, kid: "" }],
    ["crit", { ...goodHeader, crit: ["exp"] }],
    ["crit with an unknown extension", { ...goodHeader, crit: ["urn:x:ext"], "urn:x:ext": true }],
    ["cty JWT (nested)", { ...goodHeader, cty: "JWT" }],
    ["enc (encrypted)", { ...goodHeader, enc: "A256GCM" }],
  ])("refuse a header with %s", (_name, header) => {
    expect(reasonOf(() => verifyAccessToken(settings, keys, signed(header, goodPayload), NOW))).toBe(
      "TOKEN_INVALID",
    );
  });

  it("ignore jku/x5u/jwk/x5c: the key comes from our set only", () => {
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const header = {
      ...goodHeader,
      kid: "attacker",
      jwk: other.publicKey.export({ format: "jwk" }),
      jku: "http://127.0.0.1:1/jwks",
      x5u: "http://127.0.0.1:1/cert",
      x5c: ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"],
    };
    expect(reasonOf(() => verifyAccessToken(settings, keys, signed(header, goodPayload), NOW))).toBe(
      "TOKEN_INVALID",
    );
  });

  it("refuse alg none with an empty signature", () => {
    const token = `${b64({ alg: "none", typ: "at+jwt", kid: "k1" })}.${b64(goodPayload)}.`;
    expect(reasonOf(() => verifyAccessToken(settings, keys, token, NOW))).toBe("TOKEN_INVALID");
  });

  it("refuse HS256 keyed with our public key (PEM, DER, JWK)", () => {
    const encodings = [
      publicKey.export({ format: "pem", type: "spki" }),
      publicKey.export({ format: "der", type: "spki" }),
      JSON.stringify(publicKey.export({ format: "jwk" })),
    ];
    for (const secret of encodings) {
      const input = `${b64({ alg: "HS256", typ: "at+jwt", kid: "k1" })}.${b64(goodPayload)}`;
      const mac = createHmac("sha256", secret).update(input).digest("base64url");
      expect(reasonOf(() => verifyAccessToken(settings, keys, `${input}.${mac}`, NOW))).toBe("TOKEN_INVALID");
    }
  });

  it("refuse a token signed by a key that is not ours, even with our kid", async () => {
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const token = await new SignJWT(goodPayload)
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "k1" })
      .sign(other.privateKey);
    expect(reasonOf(() => verifyAccessToken(settings, keys, token, NOW))).toBe("TOKEN_INVALID");
  });

  it.each([
    ["wrong iss", { iss: "someone-else" }],
    ["wrong aud", { aud: "other-service" }],
    ["aud list without us", { aud: ["a", "b"] }],
    ["exp missing", { exp: undefined }],
    ["exp a string", { exp: "9999999999" }],
    ["iat in the future", { iat: NOW / 1000 + 60 }],
    ["nbf in the future", { nbf: NOW / 1000 + 60 }],
    ["sub missing", { sub: undefined }],
    ["sid missing", { sid: undefined }],
    ["roles not strings", { roles: [1, 2] }],
  ])("refuse a payload with %s", (_name, change) => {
    const payload = JSON.parse(JSON.stringify({ ...goodPayload, ...change }));
    expect(reasonOf(() => verifyAccessToken(settings, keys, signed(goodHeader, payload), NOW))).toBe(
      "TOKEN_INVALID",
    );
  });

  it("accept an aud list that names us", () => {
    const token = signed(goodHeader, { ...goodPayload, aud: ["x", "aud-test"] });
    expect(verifyAccessToken(settings, keys, token, NOW).userId).toBe("u1");
  });

  it.each([
    ["empty", ""],
    ["garbage", "not a token"],
    ["two parts", "a.b"],
    ["nested / encrypted (5 parts)", "a.b.c.d.e"],
    ["a refresh token", newRefreshToken().token],
    ["non-JSON header", `${b64("x")}.${b64(goodPayload)}.AAAA`],
    ["array header", `${b64([1])}.${b64(goodPayload)}.AAAA`],
  ])("refuse %s", (_name, token) => {
    expect(reasonOf(() => verifyAccessToken(settings, keys, token, NOW))).toBe("TOKEN_INVALID");
  });

  it("refuse tokens over the size cap before parsing", () => {
    const huge = `${"a".repeat(MAX_ACCESS_TOKEN_LENGTH)}.b.c`;
    expect(() => verifyAccessToken(settings, keys, huge, NOW)).toThrow(/too long/);
  });
});

describe("refresh tokens", () => {
  it("carry 256 bits and are stored only as a SHA-256 hash", () => {
    const { token, hash } = newRefreshToken();
    expect(Buffer.from(token, "base64url")).toHaveLength(32);
    expect(hash).toEqual(hashRefreshToken(token));
    expect(hash).toHaveLength(32);
    expect(newRefreshToken().token).not.toBe(token);
  });
});
