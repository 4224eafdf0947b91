import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { IdentityError } from "../domain/errors.js";
import type { AccessClaims, TokenSettings } from "../domain/tokens.js";
import {
  IdentityService,
  WatchRevocationsRequestSchema,
  type WatchRevocationsResponse,
} from "../gen/identity/v1/identity_pb.js";
import { createVerifyToken } from "../identity/verify-token.js";
import { createRevocationMirror, type RevocationEntry } from "../revocation/revocation-mirror.js";
import { createKeySchedule, type PublishedKey } from "../signing-keys/key-schedule.js";
import { grpcMethodDefinition } from "../wire/grpc-method.js";
import { reasonOfGrpcError, type VerifiedUser, VerifyError, verifiedUser } from "./verifier.js";

export interface LocalVerifierOptions {
  /** host:port of the identity service's gRPC port. */
  address: string;
  /** This caller's key; CALLERS must allow it WatchRevocations. */
  callerKey?: string;
  credentials?: grpc.ChannelCredentials;
  /** grpc-js channel options, over the verifier's own (reconnect backoff, keepalive). */
  channelOptions?: grpc.ChannelOptions;
  /** The service's TOKEN_ISSUER. Default "wechat-identity". */
  issuer?: string;
  /** The service's TOKEN_AUDIENCE; default: each app its own (the token's appid). */
  audience?: string | null;
  /** Clock skew tolerated on exp, nbf and iat (the service's TOKEN_LEEWAY). Default 5000 ms. */
  leewayMs?: number;
  /** The app this service serves: tokens of other apps are refused (TOKEN_APP_MISMATCH). */
  appId?: string;
  /**
   * Disconnected longer than this, the mirror may miss revocations: answers are refused
   * (`unavailable`, or the fallback). Default 10 s.
   */
  maxStalenessMs?: number;
  /** Longest pause between reconnects. Default 2000 ms. */
  maxReconnectBackoffMs?: number;
  /** Most bytes the verified tokens may take. Default 4 MiB. */
  cacheBytes?: number;
  /**
   * Asked instead of answering `unavailable` while the mirror cannot be trusted (before the first
   * snapshot, or past maxStalenessMs): usually the remote verifier (createVerifier), so a blind
   * spot costs a round trip rather than an outage.
   */
  fallback?: { verify(accessToken: string): Promise<VerifiedUser> };
}

/** What the local verifier knows of its own freshness. */
export interface LocalVerifierLag {
  /** A complete snapshot has arrived. */
  ready: boolean;
  /** The subscription is up (or the mirror is fresh enough to answer). */
  connected: boolean;
  /** How long it has been disconnected; 0 while connected. */
  disconnectedForMs: number;
  /** The last position received. */
  position: string;
}

/**
 * Verifies access tokens locally: signature, issuer, audience, type and expiry against the public
 * keys it holds (the service's own rules, domain/tokens.ts), and refuses any token whose session
 * is in its mirror of the service's revocations (the service's rule, revocation-mirror.ts), both
 * kept by WatchRevocations. It fails closed: until the first snapshot has arrived, and once it
 * has been disconnected longer than maxStalenessMs, it answers `unavailable` (or asks the
 * fallback) rather than accept a token it cannot check.
 */
export function createLocalVerifier(options: LocalVerifierOptions) {
  const clock = { now: () => Date.now() };
  const settings: TokenSettings = {
    issuer: options.issuer ?? "wechat-identity",
    audience: options.audience ?? null,
    accessTokenTtlMs: 0,
    leewayMs: options.leewayMs ?? 5000,
  };
  const maxStalenessMs = options.maxStalenessMs ?? 10_000;
  const maxBackoffMs = options.maxReconnectBackoffMs ?? 2000;
  const keys = createKeySchedule(clock);
  let mirror = createRevocationMirror(clock);
  // The service's own VerifyToken (its cache, expiry, revocation and app checks), on the keys
  // and the mirror this verifier keeps; the mirror is replaced whole by each snapshot.
  const verifyToken = createVerifyToken({
    keyRing: keys,
    revocations: { refusal: (sessionId, issuedAt) => mirror.refusal(sessionId, issuedAt) },
    settings,
    clock,
    cacheBytes: options.cacheBytes ?? 4 * 1024 * 1024,
  });

  let ready = false;
  let disconnectedAt: number | null = Date.now();
  let position = "";
  let closed = false;
  let attempt = 0;
  /**
   * Dropped for reading too slowly: revocations were missed, so the mirror is not trusted (and
   * the next subscription asks for a snapshot, not a resume) until a new snapshot is complete.
   */
  let missed = false;
  let call: grpc.ClientReadableStream<WatchRevocationsResponse> | undefined;
  let timer: NodeJS.Timeout | undefined;
  /** A snapshot in progress: it replaces the mirror and the keys once complete. */
  let pending:
    | { mirror: ReturnType<typeof createRevocationMirror>; keys: readonly PublishedKey[] }
    | undefined;
  const readyWaiters: Array<() => void> = [];

  const client = new grpc.Client(options.address, options.credentials ?? grpc.credentials.createInsecure(), {
    "grpc.initial_reconnect_backoff_ms": Math.min(200, maxBackoffMs),
    "grpc.max_reconnect_backoff_ms": maxBackoffMs,
    // A dead connection is noticed within seconds, not at the next write.
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    ...options.channelOptions,
  });
  const definition = grpcMethodDefinition(IdentityService, IdentityService.method.watchRevocations);

  function entriesOf(message: WatchRevocationsResponse): RevocationEntry[] {
    return message.revoked.map((r) =>
      r.staleBeforeMs === 0n
        ? [r.sessionId, Number(r.forgetAfterMs)]
        : [r.sessionId, Number(r.forgetAfterMs), Number(r.staleBeforeMs)],
    );
  }

  // Only ES256 keys: the only algorithm the service signs with and verifyAccessToken accepts.
  const keysOf = (message: WatchRevocationsResponse): PublishedKey[] =>
    message.keys
      .filter((k) => k.alg === "ES256")
      .map((k) => ({
        kid: k.kid,
        alg: "ES256" as const,
        publicJwk: { kty: k.kty, crv: k.crv, x: k.x, y: k.y },
        activatesAt: new Date(Number(k.activatesAtMs)),
        retiresAt: k.retiresAtMs === 0n ? null : new Date(Number(k.retiresAtMs)),
      }));

  function receive(message: WatchRevocationsResponse) {
    attempt = 0;
    if (message.reset) pending = { mirror: createRevocationMirror(clock), keys: [] };
    // A snapshot's position counts only once it is complete: a stream lost halfway resumes from
    // the last complete state, not from a snapshot whose rest never arrived.
    if (!pending || message.snapshotComplete) position = message.position;
    if (pending) {
      pending.mirror.add(entriesOf(message));
      if (message.keys.length > 0) pending.keys = keysOf(message);
      if (!message.snapshotComplete) return;
      keys.accept(pending.keys);
      mirror = pending.mirror;
      pending = undefined;
      ready = true;
      missed = false;
      for (const wake of readyWaiters.splice(0)) wake();
      disconnectedAt = null;
    } else if (message.revoked.length === 0 && message.keys.length === 0) {
      // A resumed stream's last catch-up message: everything missed has arrived.
      disconnectedAt = null;
    } else {
      mirror.add(entriesOf(message));
      if (message.keys.length > 0) keys.accept(keysOf(message));
    }
  }

  function subscribe() {
    if (closed) return;
    const metadata = new grpc.Metadata();
    if (options.callerKey) metadata.set("authorization", `Bearer ${options.callerKey}`);
    const current = client.makeServerStreamRequest(
      definition.path,
      definition.requestSerialize,
      definition.responseDeserialize as (bytes: Buffer) => WatchRevocationsResponse,
      create(WatchRevocationsRequestSchema, { after: ready && !missed ? position : "" }),
      metadata,
    );
    call = current;
    current.on("data", receive);
    const lost = (err?: unknown) => {
      if (call !== current || closed) return;
      if (reasonOfGrpcError(err) === "SUBSCRIBER_TOO_SLOW") missed = true;
      call = undefined;
      pending = undefined;
      disconnectedAt ??= Date.now();
      const delay = Math.min(100 * 2 ** attempt++, maxBackoffMs);
      timer = setTimeout(subscribe, delay);
      timer.unref?.();
    };
    current.on("error", lost);
    current.on("end", () => lost());
  }
  subscribe();

  /** Why the mirror cannot be trusted now, if it cannot. */
  function blindSpot(now: number): string | undefined {
    if (!ready) return "no snapshot of the revocations yet";
    if (missed) return "dropped by the service for reading too slowly: revocations were missed";
    if (disconnectedAt !== null && now - disconnectedAt > maxStalenessMs)
      return `revocations not heard of for ${now - disconnectedAt} ms`;
    return undefined;
  }

  function verifyLocally(accessToken: string): VerifiedUser {
    let claims: AccessClaims;
    try {
      claims = verifyToken.verify(accessToken, options.appId);
    } catch (err) {
      if (!(err instanceof IdentityError)) throw err;
      const kind = err.reason === "INVALID_ARGUMENT" ? "invalid" : "unauthenticated";
      throw new VerifyError(kind, err.reason, err.message);
    }
    return verifiedUser(claims, claims.expiresAt * 1000);
  }

  return {
    async verify(accessToken: string): Promise<VerifiedUser> {
      const now = Date.now();
      const blind = blindSpot(now);
      if (blind === undefined) return verifyLocally(accessToken);
      if (options.fallback) return options.fallback.verify(accessToken);
      throw new VerifyError("unavailable", "REVOCATIONS_STALE", blind);
    },
    /** Resolves once the first snapshot has arrived. */
    ready(): Promise<void> {
      return ready ? Promise.resolve() : new Promise((resolve) => readyWaiters.push(resolve));
    },
    lag(): LocalVerifierLag {
      const now = Date.now();
      return {
        ready,
        connected: disconnectedAt === null,
        disconnectedForMs: disconnectedAt === null ? 0 : now - disconnectedAt,
        position,
      };
    },
    close() {
      closed = true;
      clearTimeout(timer);
      call?.cancel();
      client.close();
    },
  };
}

export type LocalVerifier = ReturnType<typeof createLocalVerifier>;
