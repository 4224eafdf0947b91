import * as grpc from "@grpc/grpc-js";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSealer } from "../../src/domain/sealing.js";
import { rotateSigningKey } from "../../src/rotate-signing-key.js";
import { createKeyRing } from "../../src/signing-keys/key-ring.js";
import type { DatabaseHandle } from "../../src/store/pg/database.js";
import { createPgSigningKeyStore } from "../../src/store/pg/signing-key-store.js";
import { type OpenedDatabase, PG_DATABASES, REAL_DATABASE_URL, REAL_REDIS_URL } from "../helpers/backends.js";
import { movableClock } from "../helpers/clock.js";
import { grpcFailure } from "../helpers/failures.js";
import { startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const kidOf = (token: string) =>
  JSON.parse(Buffer.from(token.split(".")[0] as string, "base64url").toString()).kid as string;

/** The key ring's schedule over the embedded and the real Postgres. */
function keyScheduleSuite(name: string, open: () => Promise<OpenedDatabase>) {
  describe(`signing-key schedule: ${name}`, () => {
    let handle: DatabaseHandle;
    let drop: () => Promise<void>;
    beforeAll(async () => {
      ({ handle, drop } = await open());
      await handle.migrate();
    });
    afterAll(async () => {
      await handle.close();
      await drop();
    });

    it("rotates on schedule: published first, signs after publishAhead, the old key retires after retireAfter", async () => {
      const clock = movableClock();
      const ring = (rotationIntervalMs: number) =>
        createKeyRing({
          store: createPgSigningKeyStore(handle.db),
          sealer: createSealer(Buffer.alloc(32, 9), "signing-key"),
          clock,
          settings: { publishAheadMs: 15 * MINUTE, retireAfterMs: 2 * HOUR, rotationIntervalMs },
        });
      const a = ring(24 * HOUR);
      const b = ring(24 * HOUR); // a second instance
      expect(await a.load()).toBe(false);
      expect(await b.load()).toBe(false);
      const first = a.signingKey().kid;
      expect(b.signingKey().kid).toBe(first);

      clock.advance(24 * HOUR);
      const rotations = await Promise.all([a.load(), b.load()]);
      expect(rotations.filter(Boolean)).toHaveLength(1); // one instance rotates
      await Promise.all([a.load(), b.load()]);
      const next = a.keys().at(-1)?.kid as string;
      expect(next).not.toBe(first);
      for (const r of [a, b]) {
        expect(r.jwks().keys.map((k) => k.kid)).toEqual([first, next]); // published ahead
        expect(r.signingKey().kid).toBe(first); // but not signing yet
      }

      clock.advance(15 * MINUTE);
      for (const r of [a, b]) {
        expect(r.signingKey().kid).toBe(next); // both switch at the same instant, without talking
        expect([...r.verificationKeys().keys()]).toEqual([first, next]); // the old key still verifies
      }

      clock.advance(2 * HOUR + 1000);
      for (const r of [a, b]) {
        expect([...r.verificationKeys().keys()]).toEqual([next]);
        expect(r.jwks().keys.map((k) => k.kid)).toEqual([next]);
      }
    });
  });
}

for (const { name, open } of PG_DATABASES) keyScheduleSuite(name, open);

/**
 * `npm run keys:rotate` (its function, with the tests' clock) against two running instances
 * sharing Postgres and Redis, and a jose createRemoteJWKSet verifier as an offline consumer.
 */
describe.skipIf(!REAL_DATABASE_URL || !REAL_REDIS_URL)(
  "key rotation across instances (real backends)",
  () => {
    const clock = movableClock();
    let a: TestApp;
    let b: TestApp;
    beforeAll(async () => {
      a = await startTestApp("real", { ACCESS_TOKEN_TTL: "1h", TOKEN_LEEWAY: "5" }, { clock });
      b = await startTestApp(
        "real",
        { ACCESS_TOKEN_TTL: "1h", TOKEN_LEEWAY: "5" },
        { clock, shareStorageWith: a },
      );
    });
    afterAll(async () => {
      await b?.stop();
      await a?.stop();
    });

    const login = async (on: TestApp) => {
      const { code } = on.sandbox.issueCode({ appId: (TEST_APPS[0] as (typeof TEST_APPS)[0]).appId });
      return (await on.connect.login({ appId: (TEST_APPS[0] as (typeof TEST_APPS)[0]).appId, code })).tokens
        ?.accessToken as string;
    };
    const jwksKids = async (on: TestApp) =>
      (
        (await (await fetch(`${on.httpUrl}/.well-known/jwks.json`)).json()) as {
          keys: Array<{ kid: string }>;
        }
      ).keys.map((k) => k.kid);
    const offline = (on: TestApp, token: string) =>
      jwtVerify(token, createRemoteJWKSet(new URL(`${on.httpUrl}/.well-known/jwks.json`)), {
        issuer: on.config.tokens.issuer,
        audience: on.config.tokens.audience ?? (TEST_APPS[0] as (typeof TEST_APPS)[0]).appId, // each app its own
        typ: "at+jwt",
        algorithms: ["ES256"],
        currentDate: new Date(clock.now()),
      });

    it("publishes the next key on every instance before it signs, switches together, retires the old key after the longest token life", async () => {
      const oldToken = await login(a);
      const oldKid = kidOf(oldToken);
      expect((await offline(b, oldToken)).payload.sid).toBeTypeOf("string");

      const report = await rotateSigningKey(a.config, { clock });
      expect(report.rotated).toBe(true);
      expect((await rotateSigningKey(a.config, { clock })).rotated).toBe(false); // one waits already
      const newKid = report.kid;
      const ahead = report.activatesAt.getTime() - clock.now();
      expect(ahead).toBeGreaterThan(a.config.signingKeys.publishAheadMs - 5000);
      expect(ahead).toBeLessThanOrEqual(a.config.signingKeys.publishAheadMs);
      // Both instances hear of it through Redis and publish it at once...
      for (const on of [a, b]) {
        await expect.poll(() => jwksKids(on), { timeout: 5000 }).toEqual([oldKid, newKid]);
        expect(kidOf(await login(on))).toBe(oldKid); // ...but still sign with the old one
      }

      clock.advance(a.config.signingKeys.publishAheadMs);
      const newTokens = [await login(a), await login(b)];
      for (const token of newTokens) expect(kidOf(token)).toBe(newKid);
      for (const on of [a, b]) {
        // Tokens of either key verify during the overlap, here and offline.
        expect((await on.grpc.call("verifyToken", { accessToken: oldToken })).claims).toBeDefined();
        expect(
          (await on.grpc.call("verifyToken", { accessToken: newTokens[0] as string })).claims,
        ).toBeDefined();
        expect((await offline(on, newTokens[1] as string)).protectedHeader.kid).toBe(newKid);
      }

      clock.advance(3600_000 + 5000 + 1000); // the longest access-token life and the leeway
      for (const on of [a, b]) {
        expect(await jwksKids(on)).toEqual([newKid]);
        expect(await grpcFailure(on.grpc.call("verifyToken", { accessToken: oldToken }))).toMatchObject({
          code: grpc.status.UNAUTHENTICATED,
        });
        await expect(offline(on, oldToken)).rejects.toThrow();
      }
    });
  },
);
