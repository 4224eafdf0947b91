import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityService } from "../../src/gen/identity/v1/identity_pb.js";
import { REAL_DATABASE_URL } from "../helpers/backends.js";
import { connectFailure } from "../helpers/failures.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];

/**
 * A raw Connect call with only the deadline header (no client-side timer), so what comes back is
 * the server's own answer.
 */
async function loginWithDeadlineHeader(t: TestApp, code: string, timeoutMs?: number) {
  const res = await fetch(`${t.httpUrl}/identity.v1.IdentityService/Login`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(timeoutMs ? { "connect-timeout-ms": String(timeoutMs) } : {}),
    },
    body: JSON.stringify({ appId: APP.appId, code }),
  });
  const body = (await res.json()) as { code: string; details?: Array<{ debug?: { reason?: string } }> };
  return {
    status: res.status,
    code: body.code as string,
    reason: body.details?.[0]?.debug?.reason as string,
  };
}

describe.each(BACKENDS)("deadlines (%s backends)", (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    // WeChat answers in 3 s here; the service would wait 5 s for it.
    t = await startTestApp(backend, { WECHAT_TIMEOUT_MS: "5000", REQUEST_TIMEOUT: "2s" });
  });
  afterAll(() => t.stop());

  it("asks WeChat only within the caller's deadline, and answers DEADLINE_EXCEEDED at REQUEST_TIMEOUT without one", async () => {
    t.sandbox.setLatency(3000);
    try {
      const [withHeader, withDefault] = await Promise.all([
        loginWithDeadlineHeader(t, t.sandbox.issueCode({ appId: APP.appId }).code, 800),
        loginWithDeadlineHeader(t, t.sandbox.issueCode({ appId: APP.appId }).code),
      ]);
      // WeChat was given what was left of 800 ms, and is named as the one too slow.
      expect(withHeader).toEqual({ status: 503, code: "unavailable", reason: "WECHAT_UNAVAILABLE" });
      expect(withDefault).toEqual({ status: 504, code: "deadline_exceeded", reason: "DEADLINE_EXCEEDED" });
    } finally {
      t.sandbox.setLatency(0);
    }
  });

  it("gives every RPC REQUEST_TIMEOUT when the caller sets no deadline (CheckSessionKey, waiting on WeChat)", async () => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    const accessToken = (await t.connect.login({ appId: APP.appId, code })).tokens?.accessToken;
    t.sandbox.setLatency(3000);
    try {
      const res = await fetch(`${t.httpUrl}/identity.v1.IdentityService/CheckSessionKey`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ accessToken }),
      });
      expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([504, "deadline_exceeded"]);
    } finally {
      t.sandbox.setLatency(0);
    }
  });

  it("keeps the code unspent when too little of the deadline is left to ask WeChat", async () => {
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    const calls = t.sandbox.stats.code2SessionCalls;
    expect(await loginWithDeadlineHeader(t, code, 60)).toEqual({
      status: 504,
      code: "deadline_exceeded",
      reason: "DEADLINE_EXCEEDED",
    });
    expect(t.sandbox.stats.code2SessionCalls).toBe(calls);
    expect((await t.connect.login({ appId: APP.appId, code })).tokens?.accessToken).toBeTruthy();
  });
});

/** A table locked under the service: nothing waits past its deadline, and nothing is lost. */
describe.runIf(REAL_DATABASE_URL)("a locked table (real Postgres)", () => {
  let t: TestApp;
  beforeAll(async () => {
    // No reuse grace: a rotation carried out behind a caller's back would show as REFRESH_TOKEN_REUSED.
    t = await startTestApp("real", { DATABASE_STATEMENT_TIMEOUT: "2s", REFRESH_TOKEN_REUSE_GRACE: "0" });
  });
  afterAll(() => t.stop());

  it("answers Refreshes by their deadline or UNAVAILABLE, and each token refreshes once the lock is gone", async () => {
    const tokens: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { code } = t.sandbox.issueCode({ appId: APP.appId });
      tokens.push((await t.connect.login({ appId: APP.appId, code })).tokens?.refreshToken ?? "");
    }
    const locker = postgres(t.config.databaseUrl as string, { max: 1, onnotice: () => {} });
    const short = createClient(
      IdentityService,
      createConnectTransport({ baseUrl: t.httpUrl, httpVersion: "1.1", defaultTimeoutMs: 1000 }),
    );
    try {
      await locker.begin(async (tx) => {
        await tx`lock table refresh_tokens in access exclusive mode`;
        // Short deadlines give up first; without one, the statement timeout answers.
        const withDeadline = await Promise.all(
          tokens.slice(0, 4).map((refreshToken) =>
            short.refresh({ refreshToken }).then(
              () => "answered",
              (e: unknown) => ConnectError.from(e).code,
            ),
          ),
        );
        expect(withDeadline).toEqual([1, 2, 3, 4].map(() => Code.DeadlineExceeded));
        expect(await connectFailure(t.connect.refresh({ refreshToken: tokens[4] as string }))).toMatchObject({
          code: Code.Unavailable,
          reason: "STORAGE_UNAVAILABLE",
        });
        // Held past the statement timeout: what the abandoned calls started has been cancelled.
        await new Promise((resolve) => setTimeout(resolve, 2500));
      });
      for (const refreshToken of tokens) {
        expect((await t.connect.refresh({ refreshToken })).tokens?.refreshToken).toBeTruthy();
      }
    } finally {
      await locker.end();
    }
  });

  it("does not rotate behind the back of a caller who gave up, even when the lock ends before the statement timeout", async () => {
    const tokens: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { code } = t.sandbox.issueCode({ appId: APP.appId });
      tokens.push((await t.connect.login({ appId: APP.appId, code })).tokens?.refreshToken ?? "");
    }
    const locker = postgres(t.config.databaseUrl as string, { max: 1, onnotice: () => {} });
    const short = createClient(
      IdentityService,
      createConnectTransport({ baseUrl: t.httpUrl, httpVersion: "1.1", defaultTimeoutMs: 500 }),
    );
    try {
      await locker.begin(async (tx) => {
        await tx`lock table sessions in access exclusive mode`;
        const answers = await Promise.all(
          tokens.map((refreshToken) =>
            short.refresh({ refreshToken }).then(
              () => "answered",
              (e: unknown) => ConnectError.from(e).code,
            ),
          ),
        );
        expect(answers).toEqual(tokens.map(() => Code.DeadlineExceeded));
        // Released well within DATABASE_STATEMENT_TIMEOUT (2 s): the waiting statements run now.
        await new Promise((resolve) => setTimeout(resolve, 500));
      });
      // Give the released statements time to finish, then retry each token (no reuse grace).
      await new Promise((resolve) => setTimeout(resolve, 500));
      for (const refreshToken of tokens) {
        expect((await t.connect.refresh({ refreshToken })).tokens?.refreshToken).toBeTruthy();
      }
    } finally {
      await locker.end();
    }
  });
});
