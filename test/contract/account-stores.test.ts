import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountStore, AuditRecord, SessionStore } from "../../src/domain/ports.js";
import { uniqueName } from "../helpers/scratch-database.js";
import {
  newSession,
  SESSION_STORE_BACKENDS,
  type SessionStoreBackend,
} from "../helpers/session-store-backends.js";

const audit = (type: string, subjectUserId: string | null, at = new Date()): AuditRecord => ({
  at,
  type,
  actor: "admin-1",
  subjectUserId,
  ip: "10.0.0.9",
  userAgent: "",
  details: { note: type },
});

/** The AccountStore contract, on every backend the SessionStore contract runs on. */
describe.each(SESSION_STORE_BACKENDS)("AccountStore: $name", ({ open }) => {
  let backend: SessionStoreBackend;
  let accounts: AccountStore;
  let sessions: SessionStore;
  beforeAll(async () => {
    backend = await open();
    ({ accounts, sessions } = backend);
  });
  afterAll(() => backend.close());

  const wechatUser = async () => {
    const session = newSession();
    const started = await sessions.start({ appId: "wxa", openid: uniqueName("o"), unionid: null }, session);
    return { userId: started.user.id, session };
  };

  it("seeds only missing roles, sets a role's permissions, and logins and refreshes carry what roles grant", async () => {
    await accounts.seedRoles([{ name: "admin", permissions: ["identity:admin"] }]);
    await accounts.seedRoles([{ name: "admin", permissions: ["other"] }]);
    expect(await accounts.listRoles()).toContainEqual({ name: "admin", permissions: ["identity:admin"] });

    const role = uniqueName("r").toLowerCase();
    await accounts.setRolePermissions(
      { name: role, permissions: ["b:read", "a:write"] },
      new Date(),
      audit("x", null),
    );
    const { userId } = await wechatUser();
    await accounts.setRoles(userId, [role, "admin"], new Date(), audit("roles.changed", userId));
    const login = await sessions.startForUser(userId, "staff", newSession());
    expect(login?.permissions).toEqual(["a:write", "b:read", "identity:admin"]);
    const details = await accounts.getUser(userId);
    expect(details?.user.roles.sort()).toEqual(["admin", role].sort());
    expect(details?.permissions).toEqual(["a:write", "b:read", "identity:admin"]);
  });

  it("marks a user's live sessions out of date on a role change, and lists them as such until revoked", async () => {
    const { userId, session } = await wechatUser();
    const before = new Date(Date.now() - 1000);
    const now = new Date();
    const stale = await accounts.setRoles(userId, ["ops"], now, audit("roles.changed", userId));
    expect(stale).toEqual([expect.objectContaining({ id: session.id, staleBefore: now })]);
    const listed = (await sessions.listRevokedSince(before)).find((s) => s.id === session.id);
    expect(listed?.staleBefore?.getTime()).toBe(now.getTime());

    await sessions.revoke(
      { sessionId: session.id },
      { everySessionOfUser: false, reason: "logout", now: new Date() },
    );
    const revoked = (await sessions.listRevokedSince(before)).find((s) => s.id === session.id);
    expect(revoked).toBeDefined();
    expect(revoked?.staleBefore).toBeUndefined();
    expect(await accounts.setRoles(randomUUID(), [], now, audit("roles.changed", null))).toBeNull();
  });

  it("disables a user (ending their sessions, recording who and why) and enables them again", async () => {
    const { userId, session } = await wechatUser();
    const ended = await accounts.setDisabled(
      userId,
      { by: "admin-1", reason: "fraud" },
      new Date(),
      audit("user.disabled", userId),
    );
    expect(ended?.map((s) => s.id)).toEqual([session.id]);
    expect((await backend.storedSession(session.id))?.revokedAt).toBeInstanceOf(Date);
    expect((await accounts.getUser(userId))?.user).toMatchObject({
      disabledBy: "admin-1",
      disabledReason: "fraud",
    });
    expect(
      (await sessions.start({ appId: "wxa", openid: uniqueName("o"), unionid: null }, newSession()))
        .sessionStored,
    ).toBe(true);
    expect((await sessions.startForUser(userId, "staff", newSession()))?.sessionStored).toBe(false);

    expect(await accounts.setDisabled(userId, null, new Date(), audit("user.enabled", userId))).toEqual([]);
    expect((await accounts.getUser(userId))?.user).toMatchObject({ disabledAt: null, disabledBy: null });
    expect((await sessions.startForUser(userId, "staff", newSession()))?.sessionStored).toBe(true);
    expect(
      await accounts.setDisabled(randomUUID(), null, new Date(), audit("user.enabled", null)),
    ).toBeNull();
  });

  it("creates a staff account once per username, finds its credential, and searches users by each way in", async () => {
    const username = uniqueName("staff").toLowerCase();
    const userId = randomUUID();
    const account = { userId, username, passwordHash: "$argon2id$x", roles: ["ops"], now: new Date() };
    expect(await accounts.createStaffAccount(account, audit("staff_account.created", userId))).toBe(true);
    expect(
      await accounts.createStaffAccount(
        { ...account, userId: randomUUID() },
        audit("staff_account.created", null),
      ),
    ).toBe(false);
    expect(await accounts.findPasswordCredential(username)).toEqual({ userId, passwordHash: "$argon2id$x" });
    expect(await accounts.findPasswordCredential(uniqueName("nobody"))).toBeNull();
    expect((await accounts.searchUsers({ username, limit: 10 })).map((u) => u.id)).toEqual([userId]);
    expect((await accounts.getUser(userId))?.username).toBe(username);

    const openid = uniqueName("o");
    const wechat = await sessions.start({ appId: "wxb", openid, unionid: null }, newSession());
    expect((await accounts.searchUsers({ openid, limit: 10 })).map((u) => u.id)).toEqual([wechat.user.id]);
    expect((await accounts.searchUsers({ userId: wechat.user.id, limit: 10 })).map((u) => u.id)).toEqual([
      wechat.user.id,
    ]);
    expect(await accounts.searchUsers({ openid, username, limit: 10 })).toEqual([]);
    expect((await accounts.getUser(wechat.user.id))?.wechat).toEqual([
      { appId: "wxb", openid, unionid: null },
    ]);
  });

  it("writes logins to the audit log with their session, and pages through it newest first, by user, type and time", async () => {
    const { userId, session } = await wechatUser();
    const base = Date.now();
    await accounts.recordAudit([
      audit("t.one", userId, new Date(base + 1000)),
      audit("t.two", userId, new Date(base + 2000)),
      audit("t.one", userId, new Date(base + 3000)),
    ]);
    const all = await accounts.listAudit({ subjectUserId: userId, limit: 10 });
    expect(all.map((e) => e.type)).toEqual(["t.one", "t.two", "t.one", "login.succeeded"]);
    expect(all[3]?.details).toMatchObject({ method: "wechat", session_id: session.id });
    expect(all[0]).toMatchObject({ actor: "admin-1", ip: "10.0.0.9", details: { note: "t.one" } });

    const page = await accounts.listAudit({ subjectUserId: userId, limit: 2 });
    const last = page[1] as (typeof page)[number];
    const rest = await accounts.listAudit({
      subjectUserId: userId,
      limit: 2,
      after: { at: last.at, id: last.id },
    });
    expect([...page, ...rest].map((e) => e.id)).toEqual(all.map((e) => e.id));
    expect((await accounts.listAudit({ subjectUserId: userId, type: "t.one", limit: 10 })).length).toBe(2);
    expect(
      (
        await accounts.listAudit({
          subjectUserId: userId,
          since: new Date(base + 1500),
          before: new Date(base + 2500),
          limit: 10,
        })
      ).map((e) => e.type),
    ).toEqual(["t.two"]);

    await sessions.revoke(
      { sessionId: session.id },
      {
        everySessionOfUser: false,
        reason: "logout",
        now: new Date(),
        audit: { type: "logout", actor: null, ip: "1.2.3.4", userAgent: "ua" },
      },
    );
    const [logout] = await accounts.listAudit({ subjectUserId: userId, type: "logout", limit: 1 });
    expect(logout).toMatchObject({
      actor: userId,
      ip: "1.2.3.4",
      details: { reason: "logout", sessions: 1 },
    });
  });

  it("purges audit rows older than a date, in batches", async () => {
    const userId = randomUUID();
    const old = new Date(Date.now() - 400 * 86_400_000);
    await accounts.recordAudit([audit("old", userId, old), audit("old", userId, old), audit("new", userId)]);
    let purged = 0;
    for (let n = await accounts.purgeAudit(new Date(Date.now() - 365 * 86_400_000), 1); n > 0; ) {
      purged += n;
      n = await accounts.purgeAudit(new Date(Date.now() - 365 * 86_400_000), 1);
    }
    expect(purged).toBeGreaterThanOrEqual(2);
    expect((await accounts.listAudit({ subjectUserId: userId, limit: 10 })).map((e) => e.type)).toEqual([
      "new",
    ]);
  });
});
