import { describe, expect, it } from "vitest";
import { describeUrl, openAtStart } from "../../src/util/open-at-start.js";
import { memoryLogger } from "../helpers/test-app.js";

describe("opening a dependency at start", () => {
  it("names a URL without its credentials", () => {
    expect(describeUrl("postgres://user:secret@db:5432/identity")).toBe("postgres://db:5432/identity");
    expect(describeUrl("redis://:secret@cache:6379")).toBe("redis://cache:6379");
    expect(describeUrl("not a url")).toBe("an unparsable URL");
  });

  it("tries again while the failure is worth waiting out, and throws at once otherwise", async () => {
    const log = memoryLogger();
    let tries = 0;
    const opened = await openAtStart(
      "Postgres at postgres://db:5432/identity",
      async () => {
        if (++tries < 3) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
        return "open";
      },
      { timeoutMs: 10_000, log, retryable: () => true },
    );
    expect(opened).toBe("open");
    expect(log.lines.map((l) => l.fields?.attempt)).toEqual([1, 2]);

    tries = 0;
    const broken = openAtStart(
      "Postgres at postgres://db:5432/identity",
      async () => {
        tries++;
        throw Object.assign(new Error("syntax error in migration"), { code: "42601" });
      },
      { timeoutMs: 10_000, log, retryable: (err) => (err as { code?: string }).code === "ECONNREFUSED" },
    );
    await expect(broken).rejects.toThrow("Postgres at postgres://db:5432/identity failed: Error:42601");
    expect(tries).toBe(1);
  });
});
