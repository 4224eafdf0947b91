import { describe, expect, it } from "vitest";
import { IdentityError } from "../../src/domain/errors.js";
import { dependency, guardPort } from "../../src/store/guard-port.js";
import { rejection } from "../helpers/failures.js";
import { memoryLogger } from "../helpers/test-app.js";

const refused = () =>
  Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a guarded port's cap on calls waiting for its dependency", () => {
  it("answers STORAGE_UNAVAILABLE at once past the cap, shared by every port on it, and frees a place per finished call", async () => {
    const gates: Array<() => void> = [];
    const stalled = { read: () => new Promise<string>((resolve) => gates.push(() => resolve("read"))) };
    const postgres = dependency("postgres", { maxInFlight: 3 });
    const one = guardPort(stalled, postgres);
    const two = guardPort(stalled, postgres);
    const waiting = [one.read(), two.read(), one.read()];
    expect(postgres.inFlight).toBe(3);

    const refusedCall = await rejection(two.read(), IdentityError);
    expect(refusedCall.reason).toBe("STORAGE_UNAVAILABLE");
    expect(gates).toHaveLength(3); // the refused call never reached the dependency

    gates.shift()?.();
    await waiting[0];
    expect(postgres.inFlight).toBe(2);
    const admitted = one.read();
    expect(gates).toHaveLength(3);
    for (const open of gates) open();
    expect(await Promise.all([...waiting.slice(1), admitted])).toEqual(["read", "read", "read"]);
    expect(postgres.inFlight).toBe(0);
    postgres.close();
  });

  it("frees the place of a call that failed", async () => {
    const redis = dependency("redis", { maxInFlight: 1 });
    const failing = guardPort({ write: () => Promise.reject(new Error("boom")) }, redis);
    await expect(failing.write()).rejects.toThrow("boom");
    expect(redis.inFlight).toBe(0);
    redis.close();
  });
});

describe("a guarded port's breaker", () => {
  it("once the dependency cannot be reached, answers STORAGE_UNAVAILABLE without trying it, then lets one call try it again", async () => {
    let reachable = false;
    let tries = 0;
    const port = {
      read: async () => {
        tries++;
        if (!reachable) throw refused();
        return "row";
      },
    };
    const log = memoryLogger();
    const postgres = dependency("postgres", { maxInFlight: 100, retryAfterMs: 50, log });
    const guarded = guardPort(port, postgres);
    for (let i = 0; i < 3; i++) {
      expect((await rejection(guarded.read(), IdentityError)).reason).toBe("STORAGE_UNAVAILABLE");
    }
    expect(postgres.unreachable).toBe(true);
    const failedFast = await rejection(guarded.read(), IdentityError);
    expect(failedFast.reason).toBe("STORAGE_UNAVAILABLE");
    expect(failedFast.message).toContain("postgres is not answering");
    expect(tries).toBe(3);

    // Still down after the pause: the one call that tries it fails, and the breaker opens again.
    await sleep(100);
    await rejection(guarded.read(), IdentityError);
    expect(tries).toBe(4);
    await rejection(guarded.read(), IdentityError);
    expect(tries).toBe(4);

    reachable = true;
    await sleep(100);
    expect(await guarded.read()).toBe("row");
    expect(postgres.unreachable).toBe(false);
    expect(await Promise.all([guarded.read(), guarded.read()])).toEqual(["row", "row"]);
    expect(tries).toBe(7);
    // One line as it opened, none for the failed try that reopened it, one as it closed.
    expect(log.lines.map((l) => `${l.level} ${l.message}`)).toEqual([
      "warn postgres not answering: calls fail at once, one a second tries it again",
      "info postgres answering again",
    ]);
    postgres.close();
  });

  it("stays closed while calls that reach it come between those that do not", async () => {
    let call = 0;
    const port = { read: async () => (++call % 3 === 0 ? "row" : Promise.reject(refused())) };
    const postgres = dependency("postgres", { maxInFlight: 100 });
    const guarded = guardPort(port, postgres);
    for (let n = 0; n < 12; n++) await guarded.read().catch(() => {});
    expect(postgres.unreachable).toBe(false);
    expect(call).toBe(12);
    postgres.close();
  });

  it("stays closed when the dependency answers with errors: a slow statement, a conflict, a bug", async () => {
    const errors = [
      Object.assign(new Error("canceling statement due to statement timeout"), { code: "57014" }),
      Object.assign(new Error("could not serialize access"), { code: "40001" }),
      new TypeError("a bug of ours"),
    ];
    let i = 0;
    const port = { write: () => Promise.reject(errors[i++ % errors.length]) };
    const postgres = dependency("postgres", { maxInFlight: 100 });
    const guarded = guardPort(port, postgres);
    for (let n = 0; n < 12; n++) await guarded.write().catch(() => {});
    expect(postgres.unreachable).toBe(false);
    // Each still reads as what it is.
    expect((await rejection(guarded.write(), IdentityError)).reason).toBe("STORAGE_UNAVAILABLE");
    expect((await rejection(guarded.write(), IdentityError)).reason).toBe("STORAGE_CONFLICT");
    await expect(guarded.write()).rejects.toThrow(TypeError);
    postgres.close();
  });

  it("opens for Redis on a closed connection or a command that timed out", async () => {
    const port = { get: () => Promise.reject(new Error("Connection is closed.")) };
    const redis = dependency("redis", { maxInFlight: 100 });
    const guarded = guardPort(port, redis);
    for (let n = 0; n < 3; n++) await guarded.get().catch(() => {});
    expect(redis.unreachable).toBe(true);
    expect((await rejection(guarded.get(), IdentityError)).message).toContain("redis is not answering");
    redis.close();
  });
});
