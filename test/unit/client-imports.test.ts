import { readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";

/** Every file of the repository a module pulls in through relative imports, itself included. */
function importGraph(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, "utf8");
    for (const [, spec] of source.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
      visit(join(dirname(file), (spec as string).replace(/\.js$/, ".ts")));
    }
  };
  visit(entry);
  return [...seen].map((f) => relative(process.cwd(), f)).sort();
}

describe("wechat-identity/client", () => {
  it("imports no server code: only the generated messages, the wire module, small utilities and the pure token, key and revocation rules", () => {
    const files = importGraph("src/client/index.ts");
    expect(files).toContain("src/wire/errors.ts");
    const outside = files.filter(
      (f) =>
        !/^src\/(client|wire|gen|util)\//.test(f) &&
        ![
          "src/domain/errors.ts",
          "src/domain/permissions.ts",
          // The local verifier runs the service's own VerifyToken on the keys and revocations it keeps.
          "src/domain/tokens.ts",
          "src/domain/ports.ts",
          "src/signing-keys/key-schedule.ts",
          "src/revocation/revocation-mirror.ts",
          "src/identity/verify-token.ts",
        ].includes(f),
    );
    expect(outside).toEqual([]);
  });
});
