import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { movableClock } from "../helpers/clock.js";
import { connectFailure, grpcFailure } from "../helpers/failures.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

describe.each(BACKENDS)("Refresh (%s backends)", (backend) => {
  const clock = movableClock();
  let t: TestApp; // grace 10 s, idle 60 s, absolute 150 s
  let strict: TestApp; // grace 0
  beforeAll(async () => {
    [t, strict] = await Promise.all([
      startTestApp(
        backend,
        { REFRESH_TOKEN_IDLE_TTL: "60s", SESSION_ABSOLUTE_TTL: "150s", REFRESH_TOKEN_REUSE_GRACE: "10" },
        { clock },
      ),
      startTestApp(backend, { REFRESH_TOKEN_REUSE_GRACE: "0" }),
    ]);
  });
  afterAll(() => Promise.all([t.stop(), strict.stop()]));

  const login = async (app: TestApp) => {
    const { code } = app.sandbox.issueCode({ appId: APP.appId });
    const response = await app.connect.login({ appId: APP.appId, code });
    return response.tokens as NonNullable<typeof response.tokens>;
  };
  const refresh = (app: TestApp, refreshToken: string) => app.connect.refresh({ refreshToken });

  it("rotates: a new pair for the same session, over Connect and gRPC", async () => {
    const first = await login(t);
    const second = (await refresh(t, first.refreshToken)).tokens;
    expect(second?.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(second?.refreshToken).not.toBe(first.refreshToken);
    expect(second?.accessToken).not.toBe(first.accessToken);
    expect(second?.tokenType).toBe("Bearer");
    const before = await t.grpc.call("verifyToken", { accessToken: first.accessToken });
    const after = await t.grpc.call("verifyToken", { accessToken: second?.accessToken ?? "" });
    expect(after.claims?.sessionId).toBe(before.claims?.sessionId);
    expect(after.claims?.tokenId).not.toBe(before.claims?.tokenId);

    const third = await t.grpc.call("refresh", { refreshToken: second?.refreshToken ?? "" });
    expect(third.tokens?.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(third.tokens?.refreshToken).not.toBe(second?.refreshToken);
  });

  it("gives parallel refreshes of one token the same successor (grace)", async () => {
    const first = await login(t);
    const answers = await Promise.all(Array.from({ length: 10 }, () => refresh(t, first.refreshToken)));
    const successors = new Set(answers.map((a) => a.tokens?.refreshToken));
    expect(successors.size).toBe(1);
    // The chain goes on from that one successor.
    const next = await refresh(t, [...successors][0] as string);
    expect(next.tokens?.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("tells the parent from the grandparent by generation: the grandparent is reuse, even within the grace", async () => {
    const first = await login(t);
    const second = (await refresh(t, first.refreshToken)).tokens?.refreshToken as string;
    await refresh(t, second);
    expect(await connectFailure(refresh(t, first.refreshToken))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "REFRESH_TOKEN_REUSED",
    });
  });

  it("treats the parent after the grace as reuse and ends the whole session", async () => {
    const first = await login(t);
    const second = (await refresh(t, first.refreshToken)).tokens;
    clock.advance(11_000);
    expect(await connectFailure(refresh(t, first.refreshToken))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "REFRESH_TOKEN_REUSED",
    });
    // The newest token of the session and its access tokens fail from then on.
    expect(await connectFailure(refresh(t, second?.refreshToken ?? ""))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "TOKEN_REVOKED",
    });
    expect(await grpcFailure(t.grpc.call("verifyToken", { accessToken: second?.accessToken ?? "" }))).toEqual(
      {
        code: grpc.status.UNAUTHENTICATED,
        reason: "TOKEN_REVOKED",
      },
    );
  });

  it("with grace 0, replaying a spent token is reuse at once", async () => {
    const first = await login(strict);
    await refresh(strict, first.refreshToken);
    expect(await connectFailure(refresh(strict, first.refreshToken))).toMatchObject({
      reason: "REFRESH_TOKEN_REUSED",
    });
  });

  it("with grace 0, N parallel refreshes of one token give exactly one success (5 rounds)", async () => {
    for (let round = 0; round < 5; round++) {
      const first = await login(strict);
      // All requests leave together; the database decides.
      const outcomes = await Promise.allSettled(
        Array.from({ length: 8 }, () => refresh(strict, first.refreshToken)),
      );
      expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    }
  });

  it("enforces the idle lifetime, and the absolute lifetime however often the session refreshes", async () => {
    const idle = await login(t);
    clock.advance(61_000);
    expect(await connectFailure(refresh(t, idle.refreshToken))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "TOKEN_EXPIRED",
    });

    let token = (await login(t)).refreshToken;
    for (let i = 0; i < 2; i++) {
      clock.advance(50_000);
      const tokens = (await refresh(t, token)).tokens;
      token = tokens?.refreshToken as string;
      const expiresIn = Number(tokens?.refreshTokenExpiresAt?.seconds) * 1000 - clock.now();
      expect(expiresIn).toBeLessThanOrEqual(60_000); // idle, capped by the absolute lifetime
    }
    clock.advance(51_000); // 151 s after login: past the absolute lifetime though never idle 60 s
    expect(await connectFailure(refresh(t, token))).toMatchObject({ reason: "TOKEN_EXPIRED" });
  });

  it("refuses what is not a live refresh token of ours, naming the problem", async () => {
    expect(await connectFailure(refresh(t, ""))).toMatchObject({
      code: Code.InvalidArgument,
      field: "refresh_token",
    });
    const { accessToken } = await login(t);
    expect(await connectFailure(refresh(t, accessToken))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "TOKEN_INVALID",
    });
    expect(await connectFailure(refresh(t, "A".repeat(43)))).toMatchObject({
      code: Code.Unauthenticated,
      reason: "TOKEN_INVALID",
    });
    expect(await grpcFailure(t.grpc.call("refresh", { refreshToken: "x".repeat(5000) }))).toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      reason: "TOKEN_INVALID",
    });
  });
});
