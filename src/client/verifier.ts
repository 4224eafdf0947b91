import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { hasPermission } from "../domain/permissions.js";
import {
  IdentityService,
  VerifyTokenRequestSchema,
  type VerifyTokenResponse,
} from "../gen/identity/v1/identity_pb.js";
import { entryBytes, TokenCache } from "../util/token-cache.js";
import { errorInfoOfGrpcError } from "../wire/errors.js";
import { grpcMethodDefinition } from "../wire/grpc-method.js";

/** The claims of a verified access token, as an internal service needs them. */
export interface VerifiedUser {
  userId: string;
  sessionId: string;
  appId: string;
  openid: string;
  unionid: string;
  roles: string[];
  /** What the roles grant (see hasPermission). */
  permissions: string[];
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

/** The user a token's claims name, whichever verifier checked them (the service's or the local one). */
export function verifiedUser(claims: Omit<VerifiedUser, "expiresAt">, expiresAtMs: number): VerifiedUser {
  return {
    userId: claims.userId,
    sessionId: claims.sessionId,
    appId: claims.appId,
    openid: claims.openid,
    unionid: claims.unionid,
    roles: claims.roles,
    permissions: claims.permissions,
    expiresAt: expiresAtMs,
  };
}

/**
 * Whether a verified user may do `permission`: granted exactly, or by a grant ending in "*"
 * ("order:*" covers "order:read:all"). The same rule as the service's.
 */
export const userHasPermission = (user: Pick<VerifiedUser, "permissions">, permission: string) =>
  hasPermission(user.permissions, permission);

/** The user, if they may do `permission`; otherwise a VerifyError of kind "forbidden" (answer 403). */
export function requirePermission<U extends Pick<VerifiedUser, "permissions">>(
  user: U,
  permission: string,
): U {
  if (!hasPermission(user.permissions, permission)) {
    throw new VerifyError(
      "forbidden",
      "PERMISSION_MISSING",
      `this user's permissions do not include ${permission}`,
    );
  }
  return user;
}

/**
 * Why a token was not accepted. `unauthenticated`: the token is no good (answer 401, the client
 * refreshes or logs in again); `unavailable`: the identity service could not answer (answer 503,
 * the client keeps its tokens); `invalid`: the request itself was malformed.
 */
export class VerifyError extends Error {
  override readonly name = "VerifyError";
  constructor(
    readonly kind: "unauthenticated" | "unavailable" | "invalid" | "forbidden",
    /** The service's reason (TOKEN_EXPIRED, TOKEN_REVOKED, ...), or UNAVAILABLE. */
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export interface VerifierOptions {
  /** host:port of the identity service's gRPC port. */
  address: string;
  /** Deadline of one VerifyToken call. Default 1000 ms. */
  deadlineMs?: number;
  /**
   * Keep a positive answer this long (never past the token's expiry), sparing the round trip for
   * a token seen again. A logout is then noticed up to this late. Default 0: always ask.
   */
  cacheTtlMs?: number;
  /** Most bytes the kept answers may take (about 500 each). Default 4 MiB. */
  cacheBytes?: number;
  /** @deprecated The cache is bounded in bytes now: use cacheBytes. Taken as this many 1 KB answers. */
  cacheSize?: number;
  /**
   * Longest pause between attempts to reconnect to a service that went away. grpc-js waits up
   * to 120 s by default, which would keep refusing calls long after the service is back.
   * Default 2000 ms.
   */
  maxReconnectBackoffMs?: number;
  /** The app this service serves: tokens of other apps are refused (TOKEN_APP_MISMATCH). */
  appId?: string;
  /** This caller's key (the service's CALLERS), sent as `authorization: Bearer` on every call. */
  callerKey?: string;
  /** Default insecure (inside a trusted network); pass TLS credentials otherwise. */
  credentials?: grpc.ChannelCredentials;
}

/**
 * The client for internal services: VerifyToken over grpc-js on one kept connection, with a
 * deadline, an optional short cache of positive answers, and typed errors.
 *
 *   const verifier = createVerifier({ address: "identity:50051" });
 *   const user = await verifier.verify(bearerToken); // throws VerifyError
 */
export function createVerifier(options: VerifierOptions) {
  const deadlineMs = options.deadlineMs ?? 1000;
  const cacheTtlMs = options.cacheTtlMs ?? 0;
  const cache = new TokenCache<{ user: VerifiedUser; until: number }>({
    maxBytes: options.cacheBytes ?? (options.cacheSize ?? 4096) * 1024,
    bytesOf: ({ user }) => verifiedUserBytes(user),
  });
  const method = IdentityService.method.verifyToken;
  const definition = grpcMethodDefinition(IdentityService, method);
  const maxBackoffMs = options.maxReconnectBackoffMs ?? 2000;
  const client = new grpc.Client(options.address, options.credentials ?? grpc.credentials.createInsecure(), {
    "grpc.initial_reconnect_backoff_ms": Math.min(200, maxBackoffMs),
    "grpc.max_reconnect_backoff_ms": maxBackoffMs,
  });

  const metadata = () => {
    const m = new grpc.Metadata();
    if (options.callerKey) m.set("authorization", `Bearer ${options.callerKey}`);
    return m;
  };

  function call(accessToken: string): Promise<VerifyTokenResponse> {
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize as (bytes: Buffer) => VerifyTokenResponse,
        create(VerifyTokenRequestSchema, { accessToken, expectedAppId: options.appId ?? "" }),
        metadata(),
        { deadline: Date.now() + deadlineMs },
        (err, response) => (err || !response ? reject(toVerifyError(err)) : resolve(response)),
      );
    });
  }

  return {
    async verify(accessToken: string): Promise<VerifiedUser> {
      const now = Date.now();
      const hit = cacheTtlMs > 0 ? cache.get(accessToken) : undefined;
      if (hit && hit.until > now) return hit.user;
      const claims = (await call(accessToken)).claims;
      if (!claims)
        throw new VerifyError("unavailable", "UNAVAILABLE", "the identity service answered without claims");
      const user = verifiedUser(claims, claims.expiresAt ? timestampMs(claims.expiresAt) : now);
      if (cacheTtlMs > 0) cache.set(accessToken, { user, until: Math.min(now + cacheTtlMs, user.expiresAt) });
      return user;
    },
    close: () => client.close(),
  };
}

export type Verifier = ReturnType<typeof createVerifier>;

function verifiedUserBytes({
  userId,
  sessionId,
  appId,
  openid,
  unionid,
  roles,
  permissions,
}: VerifiedUser): number {
  return entryBytes([userId, sessionId, appId, openid, unionid], roles, permissions);
}

/** The ErrorInfo reason the service put into a gRPC error's trailers, if any. */
export function reasonOfGrpcError(err: unknown): string | undefined {
  return errorInfoOfGrpcError(err)?.reason;
}

function toVerifyError(err: grpc.ServiceError | null): VerifyError {
  const reason = reasonOfGrpcError(err);
  const message = err?.details || "VerifyToken failed";
  switch (err?.code) {
    case grpc.status.UNAUTHENTICATED:
      return new VerifyError("unauthenticated", reason ?? "TOKEN_INVALID", message);
    case grpc.status.INVALID_ARGUMENT:
      return new VerifyError("invalid", reason ?? "INVALID_ARGUMENT", message);
    default:
      // UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL...: the service could not say; keep the tokens.
      return new VerifyError("unavailable", reason ?? "UNAVAILABLE", message);
  }
}
