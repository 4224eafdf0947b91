import { randomBytes, randomFillSync } from "node:crypto";

const POOL_BYTES = 4096;
const LARGEST_FROM_POOL = 128;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let used = POOL_BYTES;

/**
 * Cryptographically secure random bytes, small requests served from a pool that is refilled
 * 4 KiB at a time. Each crypto.randomBytes() call has a fixed cost whatever its size
 * (docs/benchmarks.md),
 * and every login needs two (the refresh token, the session_key's IV). Node's randomUUID() pools
 * its entropy the same way. Each byte is handed out once, as a copy the caller owns, and wiped
 * from the pool.
 */
export function secureRandomBytes(size: number): Buffer {
  if (size > LARGEST_FROM_POOL) return randomBytes(size);
  if (used + size > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const bytes = Buffer.from(pool.subarray(used, used + size));
  pool.fill(0, used, used + size);
  used += size;
  return bytes;
}
