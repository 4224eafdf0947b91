import { create, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IdentityService,
  WatchRevocationsRequestSchema,
  type WatchRevocationsResponseSchema,
} from "../../src/gen/identity/v1/identity_pb.js";
import { grpcMethodDefinition } from "../../src/wire/grpc-method.js";
import { grpcReason } from "../helpers/grpc-client.js";
import { metricValue, scrape } from "../helpers/metrics.js";
import { BACKENDS, startTestApp, TEST_APPS, type TestApp } from "../helpers/test-app.js";

type WatchMessage = MessageShape<typeof WatchRevocationsResponseSchema>;

const APP = TEST_APPS[0] as (typeof TEST_APPS)[0];
const WATCHER_KEY = "watcher-key-0123456789abcdef";
/** WATCH_REVOCATIONS_MAX_BEHIND: a subscriber this many messages behind is dropped. */
const MAX_BEHIND = 20;
const BFF_KEY = "bff-key-0123456789abcdef";
const CALLERS = JSON.stringify([
  { name: "bff", key: BFF_KEY, methods: ["*"] },
  { name: "orders", key: WATCHER_KEY, methods: ["VerifyToken", "WatchRevocations"] },
  { name: "reports", key: "reports-key-0123456789abcdef", methods: ["VerifyToken"] },
]);

/** A subscription over grpc-js: its messages as they come, and how it ended. */
function grpcWatch(address: string, key: string, after = "", channelOptions: grpc.ChannelOptions = {}) {
  const definition = grpcMethodDefinition(IdentityService, IdentityService.method.watchRevocations);
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), channelOptions);
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${key}`);
  const call = client.makeServerStreamRequest(
    definition.path,
    definition.requestSerialize,
    definition.responseDeserialize,
    create(WatchRevocationsRequestSchema, { after }),
    metadata,
  );
  const messages: WatchMessage[] = [];
  let ended: { code: grpc.status; reason?: string } | undefined;
  call.on("data", (m: WatchMessage) => messages.push(m));
  call.on("error", (err: grpc.ServiceError) => {
    ended = { code: err.code, reason: grpcReason(err) };
  });
  return {
    messages,
    ended: () => ended,
    /** Stops reading: grpc-js stops taking messages off the connection once its buffer is full. */
    pause: () => call.pause(),
    resume: () => call.resume(),
    close() {
      call.cancel();
      client.close();
    },
  };
}

async function until(what: string, check: () => boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each(BACKENDS)("WatchRevocations (%s backends)", (backend) => {
  let t: TestApp;
  let address: string;
  beforeAll(async () => {
    t = await startTestApp(backend, { CALLERS, WATCH_REVOCATIONS_MAX_BEHIND: String(MAX_BEHIND) });
    address = `127.0.0.1:${t.app.grpcPort}`;
  });
  afterAll(() => t.stop());

  const asBff = { headers: { authorization: `Bearer ${BFF_KEY}` } };
  /** A session logged in, with its id, its tokens, and its end. */
  async function session() {
    const { code } = t.sandbox.issueCode({ appId: APP.appId });
    const { tokens } = await t.connect.login({ appId: APP.appId, code }, asBff);
    const accessToken = tokens?.accessToken as string;
    const { claims } = await t.connect.verifyToken({ accessToken }, asBff);
    return {
      id: claims?.sessionId as string,
      logout: () => t.connect.logout({ refreshToken: tokens?.refreshToken as string }, asBff),
    };
  }
  const revokedIds = (messages: WatchMessage[]) => messages.flatMap((m) => m.revoked.map((r) => r.sessionId));

  it("opens with a snapshot (keys, sessions already revoked), then streams revocations as they happen, over gRPC", async () => {
    const before = await session();
    await before.logout();
    const watch = grpcWatch(address, WATCHER_KEY);
    try {
      await until("the snapshot", () => watch.messages.some((m) => m.snapshotComplete));
      const first = watch.messages[0] as WatchMessage;
      expect(first.reset).toBe(true);
      expect(first.keys.length).toBeGreaterThan(0);
      expect(first.keys[0]).toMatchObject({ alg: "ES256", kty: "EC", crv: "P-256" });
      expect(revokedIds(watch.messages)).toContain(before.id);

      const live = await session();
      const seen = watch.messages.length;
      await live.logout();
      await until("the live revocation", () => revokedIds(watch.messages.slice(seen)).includes(live.id));
      const message = watch.messages.find((m) => m.revoked.some((r) => r.sessionId === live.id));
      expect(message?.reset).toBe(false);
      expect(Number(message?.revoked[0]?.staleBeforeMs)).toBe(0);
      expect(Number(message?.revoked[0]?.forgetAfterMs)).toBeGreaterThan(Date.now());
    } finally {
      watch.close();
    }
  });

  it("resumes after the last position it received without a new snapshot", async () => {
    const watch = grpcWatch(address, WATCHER_KEY);
    await until("the snapshot", () => watch.messages.some((m) => m.snapshotComplete));
    const position = watch.messages.at(-1)?.position as string;
    watch.close();

    const missed = await session();
    await missed.logout();
    const resumed = grpcWatch(address, WATCHER_KEY, position);
    try {
      await until("the missed revocation", () => revokedIds(resumed.messages).includes(missed.id));
      expect(resumed.messages.some((m) => m.reset)).toBe(false);
    } finally {
      resumed.close();
    }
    // A position this instance never gave: a snapshot.
    const foreign = grpcWatch(address, WATCHER_KEY, "elsewhere.12");
    try {
      await until("a snapshot", () => foreign.messages.some((m) => m.snapshotComplete));
      expect(foreign.messages[0]?.reset).toBe(true);
    } finally {
      foreign.close();
    }
  });

  it("streams over Connect on the HTTP port too", async () => {
    const client = createClient(
      IdentityService,
      createConnectTransport({ baseUrl: t.httpUrl, httpVersion: "1.1" }),
    );
    const abort = new AbortController();
    const got: WatchMessage[] = [];
    const reading = (async () => {
      for await (const m of client.watchRevocations(
        { after: "" },
        { signal: abort.signal, headers: { authorization: `Bearer ${WATCHER_KEY}` } },
      ))
        got.push(m);
    })().catch(() => {});
    await until("the snapshot", () => got.some((m) => m.snapshotComplete));
    const live = await session();
    await live.logout();
    await until("the live revocation", () => revokedIds(got).includes(live.id));
    abort.abort();
    await reading;
  });

  it("drops a subscriber that stops reading, instead of buffering for it without end; it must take a new snapshot", async () => {
    const subscribers = async () =>
      metricValue(await scrape(`${t.httpUrl}/metrics`), "identity_revocation_subscribers");
    await expect.poll(subscribers).toBe(0);
    // A 1 KiB HTTP/2 window: the connection's buffers fill after hundreds of messages, not thousands.
    const watch = grpcWatch(address, WATCHER_KEY, "", { "grpc-node.flow_control_window": 1024 });
    try {
      await until("the snapshot", () => watch.messages.some((m) => m.snapshotComplete));
      expect(await subscribers()).toBe(1);
      watch.pause();
      const readBefore = revokedIds(watch.messages).length;
      const revoked: string[] = [];
      // Logouts while it does not read, until the service lets it go: one that buffered every
      // message for it would keep it subscribed through all of them.
      while ((await subscribers()) > 0) {
        if (revoked.length >= 3000) throw new Error(`still subscribed after ${revoked.length} revocations`);
        const sessions = await Promise.all(Array.from({ length: 25 }, session));
        await Promise.all(sessions.map((s) => s.logout()));
        revoked.push(...sessions.map((s) => s.id));
      }
      watch.resume();
      await until("the end of the stream", () => watch.ended() !== undefined);
      expect(watch.ended()).toEqual({ code: grpc.status.RESOURCE_EXHAUSTED, reason: "SUBSCRIBER_TOO_SLOW" });
      // What it still got was what the connection's buffers held and its last MAX_BEHIND, not all.
      expect(revokedIds(watch.messages).length - readBefore).toBeLessThan(revoked.length);

      const again = grpcWatch(address, WATCHER_KEY);
      try {
        await until("a new snapshot", () => again.messages.some((m) => m.snapshotComplete));
        expect(again.messages[0]?.reset).toBe(true);
        expect(revokedIds(again.messages)).toEqual(expect.arrayContaining(revoked));
      } finally {
        again.close();
      }
    } finally {
      watch.close();
    }
  });

  it("is refused to a caller not allowed it", async () => {
    const watch = grpcWatch(address, "reports-key-0123456789abcdef");
    await until("the refusal", () => watch.ended() !== undefined);
    expect(watch.ended()).toEqual({ code: grpc.status.PERMISSION_DENIED, reason: "CALLER_NOT_ALLOWED" });
    watch.close();
    const err = await (async () => {
      const client = createClient(
        IdentityService,
        createConnectTransport({ baseUrl: t.httpUrl, httpVersion: "1.1" }),
      );
      for await (const _ of client.watchRevocations({})) {
      }
    })().catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
  });
});

describe("WatchRevocations at shutdown", () => {
  it("ends every subscription with UNAVAILABLE SHUTTING_DOWN when the drain starts", async () => {
    const t = await startTestApp("embedded", { CALLERS });
    const watch = grpcWatch(`127.0.0.1:${t.app.grpcPort}`, WATCHER_KEY);
    await until("the snapshot", () => watch.messages.some((m) => m.snapshotComplete));
    await t.stop();
    await until("the end of the stream", () => watch.ended() !== undefined);
    expect(watch.ended()).toEqual({ code: grpc.status.UNAVAILABLE, reason: "SHUTTING_DOWN" });
    watch.close();
  });
});
