import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createSealer } from "../../src/domain/sealing.js";
import { createMemoryKeyValueStore } from "../../src/store/memory/key-value-store.js";
import { createSessionKeyVault } from "../../src/wechat-session/session-key-vault.js";

describe("session key vault", () => {
  let now = 1_000_000;
  const clock = { now: () => now };
  const kv = createMemoryKeyValueStore(clock);
  const sealer = createSealer(randomBytes(32), "session-key");
  const vault = createSessionKeyVault({
    kv,
    sealer,
    ttlMs: 3600_000,
  });

  const held = async (appId: string, openid: string) => {
    const current = await vault.current(appId, openid);
    return current === null ? null : { current, previous: await vault.previous(appId, openid) };
  };

  it("keeps the session_key sealed at rest", async () => {
    await vault.put("wxa", "o1", "HyVFkGl5F5OQWJZZaNzBBg==");
    const stored = await kv.get("sk:{wxa:o1}");
    expect(stored).toBeTruthy();
    expect(stored).not.toContain("HyVFkGl5F5OQWJZZaNzBBg");
    expect(await held("wxa", "o1")).toEqual({ current: "HyVFkGl5F5OQWJZZaNzBBg==", previous: null });
  });

  it("keeps the previous key for the grace period after WeChat rotates it", async () => {
    await vault.put("wxa", "o2", "old-key");
    await vault.put("wxa", "o2", "new-key");
    expect(await held("wxa", "o2")).toEqual({ current: "new-key", previous: "old-key" });
    await vault.put("wxa", "o2", "new-key"); // the same key again does not drop the previous one
    expect((await held("wxa", "o2"))?.previous).toBe("old-key");
    now += 600_001;
    expect(await held("wxa", "o2")).toEqual({ current: "new-key", previous: null });
  });

  it("forgets keys after their time to live", async () => {
    await vault.put("wxa", "o3", "k");
    now += 3600_001;
    expect(await held("wxa", "o3")).toBeNull();
    expect(await held("wxa", "never")).toBeNull();
  });
});
