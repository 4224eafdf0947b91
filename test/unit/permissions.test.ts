import { describe, expect, it } from "vitest";
import { requirePermission, userHasPermission, VerifyError } from "../../src/client/index.js";
import { hasPermission } from "../../src/domain/permissions.js";

describe("permissions", () => {
  it("grants exactly, or by a grant ending in *, and nothing else", () => {
    expect(hasPermission(["order:read:all"], "order:read:all")).toBe(true);
    expect(hasPermission(["order:read"], "order:read:all")).toBe(false);
    expect(hasPermission(["order:*"], "order:read:all")).toBe(true);
    expect(hasPermission(["order:*"], "orders:read")).toBe(false);
    expect(hasPermission(["*"], "identity:admin")).toBe(true);
    expect(hasPermission([], "identity:admin")).toBe(false);
  });

  it("lets the verifier's users through requirePermission, or refuses them as forbidden", () => {
    const user = { permissions: ["order:read:own"] };
    expect(userHasPermission(user, "order:read:own")).toBe(true);
    expect(requirePermission(user, "order:read:own")).toBe(user);
    let refused: unknown;
    try {
      requirePermission(user, "order:read:all");
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(VerifyError);
    expect(refused).toMatchObject({ kind: "forbidden", reason: "PERMISSION_MISSING" });
  });
});
