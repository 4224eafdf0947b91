import { createHash, type KeyObject, randomUUID, sign, verify } from "node:crypto";
import { secureRandomBytes } from "../util/random-bytes.js";
import { IdentityError } from "./errors.js";

/**
 * Access tokens: JWTs per RFC 9068 (typ "at+jwt") signed with ES256.
 *
 * Signing and verification use node:crypto directly rather than jose: synchronous ES256 verify is
 * about three times as fast as WebCrypto's (docs/architecture.md), and the rules we
 * need (one algorithm, kid from our own key set, strict claims) are few enough to state here.
 */

export const ACCESS_TOKEN_TYPE = "at+jwt";
export const SIGNING_ALG = "ES256";
/** Tokens longer than this are refused before any parsing (ours are ~700 bytes). */
export const MAX_ACCESS_TOKEN_LENGTH = 4096;

export interface AccessClaims {
  userId: string;
  sessionId: string;
  appId: string;
  openid: string;
  unionid: string;
  roles: string[];
  /** What the roles grant (the roles table when the token was issued). */
  permissions: string[];
  tokenId: string;
  /** Seconds since the epoch. */
  issuedAt: number;
  /** Seconds since the epoch. */
  expiresAt: number;
}

export interface TokenSettings {
  issuer: string;
  /** null: each app is its own audience (aud is the token's appid), so one app's token is no other's. */
  audience: string | null;
  accessTokenTtlMs: number;
  /** Clock skew tolerated on exp/nbf/iat. */
  leewayMs: number;
}

export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
}

/**
 * The one expiry rule: a token whose exp lies more than the leeway in the past has expired. Both
 * the full verification and VerifyToken's cache of verified claims apply it.
 */
export function checkNotExpired(expiresAtSeconds: number, nowMs: number, leewayMs: number): void {
  if (expiresAtSeconds * 1000 <= nowMs - leewayMs) {
    throw new IdentityError("TOKEN_EXPIRED", "access token has expired");
  }
}

/** The order of P-256's group; an ECDSA signature (r, s) also verifies as (r, n - s). */
const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const P256_HALF_ORDER = P256_ORDER >> 1n;

/**
 * Signatures are kept to the low-S form (s <= n/2), so that one set of claims has one token
 * string: the high-S twin of a genuine signature verifies too, and is refused.
 */
export function toLowS(signature: Buffer): Buffer {
  const s = BigInt(`0x${signature.subarray(32).toString("hex")}`);
  if (s <= P256_HALF_ORDER) return signature;
  return Buffer.concat([
    signature.subarray(0, 32),
    Buffer.from((P256_ORDER - s).toString(16).padStart(64, "0"), "hex"),
  ]);
}

export const isHighS = (signature: Buffer) =>
  BigInt(`0x${signature.subarray(32).toString("hex")}`) > P256_HALF_ORDER;

function b64url(input: string | Buffer): string {
  return Buffer.from(input).toString("base64url");
}

/** Signs an access token for a session; returns the token and the claims it carries. */
export function signAccessToken(
  settings: TokenSettings,
  key: SigningKey,
  subject: Omit<AccessClaims, "tokenId" | "issuedAt" | "expiresAt">,
  nowMs: number,
): { token: string; claims: AccessClaims } {
  const issuedAt = Math.floor(nowMs / 1000);
  const claims: AccessClaims = {
    ...subject,
    tokenId: randomUUID(),
    issuedAt,
    expiresAt: issuedAt + Math.floor(settings.accessTokenTtlMs / 1000),
  };
  const header = { alg: SIGNING_ALG, typ: ACCESS_TOKEN_TYPE, kid: key.kid };
  const payload = {
    iss: settings.issuer,
    aud: settings.audience ?? claims.appId,
    sub: claims.userId,
    sid: claims.sessionId,
    jti: claims.tokenId,
    iat: claims.issuedAt,
    exp: claims.expiresAt,
    client_id: claims.appId,
    appid: claims.appId,
    ...(claims.openid ? { openid: claims.openid } : {}),
    ...(claims.unionid ? { unionid: claims.unionid } : {}),
    roles: claims.roles,
    permissions: claims.permissions,
  };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = toLowS(
    sign("sha256", Buffer.from(signingInput), { key: key.privateKey, dsaEncoding: "ieee-p1363" }),
  );
  return { token: `${signingInput}.${signature.toString("base64url")}`, claims };
}

const invalid = (why: string) => new IdentityError("TOKEN_INVALID", `access token is invalid: ${why}`);

const BASE64URL = /^[A-Za-z0-9_-]+$/;

function decodeJsonSegment(segment: string, what: string): Record<string, unknown> {
  if (!BASE64URL.test(segment)) throw invalid(`${what} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
  } catch {
    throw invalid(`${what} is not JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(`${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function requireString(payload: Record<string, unknown>, claim: string): string {
  const value = payload[claim];
  if (typeof value !== "string" || value.length === 0) throw invalid(`claim ${claim} is missing`);
  return value;
}

function optionalString(payload: Record<string, unknown>, claim: string): string {
  const value = payload[claim];
  if (value === undefined) return "";
  if (typeof value !== "string") throw invalid(`claim ${claim} is malformed`);
  return value;
}

function requireNumber(payload: Record<string, unknown>, claim: string): number {
  const value = payload[claim];
  if (typeof value !== "number" || !Number.isFinite(value)) throw invalid(`claim ${claim} is not a number`);
  return value;
}

/**
 * Fully verifies an access token: size, structure, header (alg allow-list, typ, kid from our key
 * set, no crit, no nesting or encryption), signature, then iss, aud, exp, nbf, iat. Keys are looked up by kid only; header
 * parameters that point elsewhere (jku, x5u, jwk, x5c) are never used.
 */
export function verifyAccessToken(
  settings: TokenSettings,
  publicKeys: ReadonlyMap<string, KeyObject>,
  token: string,
  nowMs: number,
  /** Logout accepts our expired tokens: the session behind one may still be alive. */
  options: { allowExpired?: boolean } = {},
): AccessClaims {
  if (token.length === 0) throw invalid("empty");
  if (token.length > MAX_ACCESS_TOKEN_LENGTH) throw invalid("too long");
  const parts = token.split(".");
  if (parts.length !== 3) throw invalid("not a signed JWT");
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];

  const header = decodeJsonSegment(headerPart, "header");
  if (header.alg !== SIGNING_ALG) throw invalid("unsupported algorithm");
  if (typeof header.typ !== "string" || !/^(application\/)?at\+jwt$/i.test(header.typ)) {
    throw invalid("not an access token (typ)");
  }
  if (header.crit !== undefined) throw invalid("unsupported critical header");
  // We never nest, encrypt or compress: a header saying so is not one of our access tokens.
  if (header.cty !== undefined || header.enc !== undefined || header.zip !== undefined)
    throw invalid("nested or encrypted tokens are not accepted");
  if (typeof header.kid !== "string") throw invalid("kid missing");
  const key = header.kid.length <= 64 ? publicKeys.get(header.kid) : undefined;
  if (!key) throw invalid("unknown key");

  if (!BASE64URL.test(signaturePart)) throw invalid("signature is not base64url");
  const signature = Buffer.from(signaturePart, "base64url");
  // Only the canonical encoding is accepted: otherwise the unused low bits of the last character
  // would let several strings carry one signature.
  if (signature.length !== 64 || signature.toString("base64url") !== signaturePart || isHighS(signature)) {
    throw invalid("bad signature");
  }
  const signed = verify(
    "sha256",
    Buffer.from(`${headerPart}.${payloadPart}`),
    { key, dsaEncoding: "ieee-p1363" },
    signature,
  );
  if (!signed) throw invalid("bad signature");

  const payload = decodeJsonSegment(payloadPart, "payload");
  if (payload.iss !== settings.issuer) throw invalid("wrong issuer");
  const aud = payload.aud;
  const audience = settings.audience ?? payload.appid;
  if (typeof audience !== "string" || !(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) {
    throw invalid("wrong audience");
  }
  const latestIssueSeconds = (nowMs + settings.leewayMs) / 1000;
  const exp = requireNumber(payload, "exp");
  const iat = requireNumber(payload, "iat");
  if (iat > latestIssueSeconds) throw invalid("issued in the future");
  if (payload.nbf !== undefined && requireNumber(payload, "nbf") > latestIssueSeconds) {
    throw invalid("not yet valid");
  }
  if (!options.allowExpired) checkNotExpired(exp, nowMs, settings.leewayMs);
  const roles = payload.roles;
  if (roles !== undefined && !(Array.isArray(roles) && roles.every((r) => typeof r === "string"))) {
    throw invalid("claim roles is malformed");
  }
  const permissions = payload.permissions;
  if (
    permissions !== undefined &&
    !(Array.isArray(permissions) && permissions.every((p) => typeof p === "string"))
  ) {
    throw invalid("claim permissions is malformed");
  }
  return {
    userId: requireString(payload, "sub"),
    sessionId: requireString(payload, "sid"),
    tokenId: requireString(payload, "jti"),
    appId: requireString(payload, "appid"),
    // A staff session (LoginWithPassword) has no openid.
    openid: optionalString(payload, "openid"),
    unionid: optionalString(payload, "unionid"),
    roles: (roles as string[] | undefined) ?? [],
    permissions: (permissions as string[] | undefined) ?? [],
    issuedAt: iat,
    expiresAt: exp,
  };
}

/** Could this be one of our access tokens at all (a signed JWT within the size cap)? */
export function isAccessTokenShaped(token: string): boolean {
  return (
    token.length <= MAX_ACCESS_TOKEN_LENGTH && /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)
  );
}

/** A new opaque refresh token: 256 bits of randomness. Only its hash is ever stored. */
export function newRefreshToken(): { token: string; hash: Buffer } {
  const token = secureRandomBytes(32).toString("base64url");
  return { token, hash: hashRefreshToken(token) };
}

/** The shape of newRefreshToken's tokens (32 bytes in base64url); anything else is not one of ours. */
export function isRefreshTokenShaped(token: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(token);
}

export function hashRefreshToken(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}
