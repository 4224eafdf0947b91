import { describe, expect, it } from "vitest";
import { IdentityError } from "../../src/domain/errors.js";
import { guardPort, inFlightLimit } from "../../src/store/guard-port.js";
import { rejection } from "../helpers/failures.js";

describe("a guarded port's cap on calls waiting for its dependency", () => {
  it("answers STORAGE_UNAVAILABLE at once past the cap, shared by every port on it, and frees a place per finished call", async () => {
    const gates: Array<() => void> = [];
    const stalled = { read: () => new Promise<string>((resolve) => gates.push(() => resolve("read"))) };
    const limit = inFlightLimit(3);
    const one = guardPort(stalled, "postgres", limit);
    const two = guardPort(stalled, "postgres", limit);
    const waiting = [one.read(), two.read(), one.read()];
    expect(limit.current).toBe(3);

    const refused = await rejection(two.read(), IdentityError);
    expect(refused.reason).toBe("STORAGE_UNAVAILABLE");
    expect(gates).toHaveLength(3); // the refused call never reached the dependency

    gates.shift()?.();
    await waiting[0];
    expect(limit.current).toBe(2);
    const admitted = one.read();
    expect(gates).toHaveLength(3);
    for (const open of gates) open();
    expect(await Promise.all([...waiting.slice(1), admitted])).toEqual(["read", "read", "read"]);
    expect(limit.current).toBe(0);
  });

  it("frees the place of a call that failed", async () => {
    const limit = inFlightLimit(1);
    const failing = guardPort({ write: () => Promise.reject(new Error("boom")) }, "redis", limit);
    await expect(failing.write()).rejects.toThrow();
    expect(limit.current).toBe(0);
  });
});
