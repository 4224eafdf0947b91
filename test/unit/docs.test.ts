import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ERROR_REASONS } from "../../src/domain/errors.js";
import { REASONS } from "../../src/wire/errors.js";

const readme = readFileSync("README.md", "utf8");

/** InvalidArgument -> INVALID_ARGUMENT, as the README writes codes. */
const codeName = (code: Code) => (Code[code] as string).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();

describe("the README's error table", () => {
  const rows = [...readme.matchAll(/^\| ((?:`[A-Z0-9_]+`(?: \/ )?)+) \| ([A-Z_]+) \|/gm)].flatMap(
    ([, reasons, code]) =>
      [...(reasons as string).matchAll(/`([A-Z0-9_]+)`/g)].map(([, reason]) => [
        reason as string,
        code as string,
      ]),
  );

  it("lists every reason with the status code the wire table gives it", () => {
    expect(rows.map(([reason]) => reason).sort()).toEqual([...ERROR_REASONS].sort());
    for (const [reason, code] of rows) {
      expect([reason, code]).toEqual([reason, codeName(REASONS[reason as keyof typeof REASONS].code)]);
    }
  });
});

describe("the repository", () => {
  it("stands on its own: no file points outside it", () => {
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((name) => {
        const path = join(dir, name);
        return statSync(path).isDirectory() ? files(path) : [path];
      });
    const texts = ["README.md", ...["src", "test", "bench", "examples", "docs", "proto"].flatMap(files)];
    const outside = texts.filter((f) =>
      /\.\.\/shared|ARCHITECTURE\.md|WECHAT\.md/.test(readFileSync(f, "utf8")),
    );
    expect(outside).toEqual([]);
  });
});
