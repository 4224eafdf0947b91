import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { signAccessToken, type TokenSettings } from "../src/domain/tokens.js";
import { IdentityService, VerifyTokenRequestSchema } from "../src/gen/identity/v1/identity_pb.js";
import { createVerifyToken, verifyCacheShares } from "../src/identity/verify-token.js";
import { KEPT_RESPONSE_BYTES, verifyTokenRpc } from "../src/transport/identity-service/verify-token.js";
import { grpcMethodDefinition } from "../src/wire/grpc-method.js";

/**
 * What VerifyToken's cache of verified tokens costs, in this process: heap bytes per entry (real,
 * from the heap after a full GC, and as the cache estimates them for VERIFY_CACHE_BYTES), first
 * the claims alone, then as the gRPC port answers (the answers kept ready for the most used
 * tokens, with their encodings, in their share of the budget); and the time of a cold verify
 * (full check and insert) into a full cache, a warm one (a hit) beside it.
 *
 *   npm run bench:token-cache      (runs node with --expose-gc)
 */
const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 100_000);
/** The cache's budget: VERIFY_CACHE_BYTES's default, which the later inserts overflow. */
const CACHE_BYTES = Number(process.env.BENCH_CACHE_BYTES ?? 32 * 1024 * 1024);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc (npm run bench:token-cache does)");

const settings: TokenSettings = {
  issuer: "https://identity.example",
  audience: null,
  accessTokenTtlMs: 3_600_000,
  leewayMs: 30_000,
};
const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const signingKey = { kid: "bench-key", privateKey };
const newVerifyToken = () =>
  createVerifyToken({
    keyRing: { verificationKeys: () => new Map([[signingKey.kid, publicKey]]) },
    revocations: { refusal: () => undefined },
    settings,
    clock: { now: () => Date.now() },
    cacheBytes: CACHE_BYTES,
  });

/** A token as a request brings it: bytes that become a string for one call, then garbage. */
const tokenBytes = () =>
  Buffer.from(
    signAccessToken(
      settings,
      signingKey,
      {
        userId: randomUUID(),
        sessionId: randomUUID(),
        appId: "wx0123456789abcdef",
        openid: `o${randomBytes(21).toString("base64url")}`,
        unionid: "",
        roles: ["user"],
        permissions: [],
      },
      Date.now(),
    ).token,
  );

/** The heap in use once garbage is gone (V8 sweeps concurrently: let it finish between GCs). */
async function heapUsed(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return process.memoryUsage().heapUsed;
}

const serialize = grpcMethodDefinition(IdentityService, IdentityService.method.verifyToken).responseSerialize;
const batch = Array.from({ length: 10_000 }, tokenBytes);
console.log(
  `token cache: ${ENTRIES} distinct tokens of ${batch[0]?.length} characters, ${CACHE_BYTES} bytes of cache`,
);

/** Verifies ENTRIES distinct tokens with `call`, timing each; prints the heap they leave behind. */
async function fill(
  what: string,
  verifyToken: ReturnType<typeof newVerifyToken>,
  call: (token: string) => void,
) {
  const before = await heapUsed();
  const filling = { ns: 0n, calls: 0 };
  const full = { ns: 0n, calls: 0 };
  const claimsBytes = verifyCacheShares(CACHE_BYTES).claims;
  for (let i = 0; i < ENTRIES; i++) {
    const token = (batch[i % batch.length] as Buffer).toString("latin1");
    batch[i % batch.length] = tokenBytes(); // the next round gets new tokens (outside the timed part)
    const phase = verifyToken.cacheStats().bytes + 1024 < claimsBytes ? filling : full;
    const start = process.hrtime.bigint();
    call(token);
    phase.ns += process.hrtime.bigint() - start;
    phase.calls++;
  }
  const stats = verifyToken.cacheStats();
  const after = await heapUsed();
  console.log(
    `${what}: heap per cached token ${((after - before) / stats.size).toFixed(0)} bytes (the claims' estimate ${(stats.bytes / stats.size).toFixed(0)}), ${stats.size} tokens, ${((after - before) / 1024 / 1024).toFixed(1)} MiB in all`,
  );
  return { filling, full };
}

// In a scope of its own, so that its cache is garbage before the next fill.
await (async () => {
  const claimsOnly = newVerifyToken();
  await fill("claims alone", claimsOnly, (token) => claimsOnly.verify(token));
})();
const verifyToken = newVerifyToken();
// As the gRPC port answers: the most used tokens' answers and encodings kept in their own share.
const rpc = verifyTokenRpc(verifyToken, CACHE_BYTES);
const kept = Math.floor(verifyCacheShares(CACHE_BYTES).answers / KEPT_RESPONSE_BYTES);
const { filling, full } = await fill(
  `as the gRPC port answers (answers kept for the last ${kept})`,
  verifyToken,
  (token) => serialize(rpc(create(VerifyTokenRequestSchema, { accessToken: token }))),
);
const micros = (p: typeof full) => (Number(p.ns) / p.calls / 1000).toFixed(1);
console.log(`cold verify while the cache fills: ${micros(filling)} µs (${filling.calls} calls)`);
console.log(
  `cold verify into the full cache, each insert evicting: ${micros(full)} µs (${full.calls} calls)`,
);

const hot = Array.from({ length: 100 }, () => tokenBytes().toString("latin1"));
for (const token of hot) verifyToken.verify(token);
const start = process.hrtime.bigint();
for (let i = 0; i < 200_000; i++) verifyToken.verify(hot[i % hot.length] as string);
console.log(
  `warm verify (a hit): ${(Number(process.hrtime.bigint() - start) / 200_000 / 1000).toFixed(2)} µs`,
);
