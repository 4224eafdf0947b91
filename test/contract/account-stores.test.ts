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

  describe("identities", () => {
    const phone = () => `+86 139${String(Math.floor(Math.random() * 1e8)).padStart(8, "0")}`;
    const wechat = (unionid: string | null = null) => ({ appId: "wxa", openid: uniqueName("o"), unionid });
    const linked = (userId: string) => audit("identity.linked", userId);
    const phoneLogin = (identity: ReturnType<typeof wechat>, number: string) =>
      sessions.startWithPhone(identity, number, newSession());

    it("links a phone number to one user only; the next login's user carries it", async () => {
      const number = phone();
      const a = await wechatUser();
      const b = await wechatUser();
      expect(
        await accounts.linkIdentity(a.userId, { kind: "phone", phoneNumber: number }, linked(a.userId)),
      ).toBe("linked");
      expect(
        await accounts.linkIdentity(a.userId, { kind: "phone", phoneNumber: number }, linked(a.userId)),
      ).toBe("unchanged");
      expect(
        await accounts.linkIdentity(b.userId, { kind: "phone", phoneNumber: number }, linked(b.userId)),
      ).toBe("conflict");
      expect((await accounts.getUser(a.userId))?.user.phoneNumber).toBe(number);
      expect((await accounts.getUser(b.userId))?.user.phoneNumber).toBeNull();
      expect(
        await accounts.listAudit({ subjectUserId: a.userId, type: "identity.linked", limit: 5 }),
      ).toHaveLength(1);
      expect(
        await accounts.linkIdentity(randomUUID(), { kind: "phone", phoneNumber: phone() }, linked(a.userId)),
      ).toBe("no-user");
    });

    it("links another app's WeChat identity unless another user or another unionid holds it", async () => {
      const a = await wechatUser();
      const b = await wechatUser();
      const other = { appId: "wxb", openid: uniqueName("o"), unionid: uniqueName("u") };
      expect(
        await accounts.linkIdentity(a.userId, { kind: "wechat", identity: other }, linked(a.userId)),
      ).toBe("linked");
      expect(
        await accounts.linkIdentity(b.userId, { kind: "wechat", identity: other }, linked(b.userId)),
      ).toBe("conflict");
      const details = await accounts.getUser(a.userId);
      expect(details?.user.unionid).toBe(other.unionid);
      expect(details?.wechat.map((w) => w.appId).sort()).toEqual(["wxa", "wxb"]);
      // A login with the linked identity reaches the same user.
      expect((await sessions.start(other, newSession())).user.id).toBe(a.userId);
      // Another person's unionid (held by b now) cannot join a.
      const bUnionid = { appId: "wxb", openid: uniqueName("o"), unionid: uniqueName("u") };
      expect(
        await accounts.linkIdentity(b.userId, { kind: "wechat", identity: bUnionid }, linked(b.userId)),
      ).toBe("linked");
      const third = { appId: "wxc", openid: uniqueName("o"), unionid: bUnionid.unionid };
      expect(
        await accounts.linkIdentity(a.userId, { kind: "wechat", identity: third }, linked(a.userId)),
      ).toBe("conflict");
    });

    it("links one password a user; a username another has is taken", async () => {
      const a = await wechatUser();
      const b = await wechatUser();
      const username = uniqueName("u").toLowerCase();
      const password = { kind: "password" as const, username, passwordHash: "$argon2id$x" };
      expect(await accounts.linkIdentity(a.userId, password, linked(a.userId))).toBe("linked");
      expect(await accounts.linkIdentity(b.userId, password, linked(b.userId))).toBe("taken");
      expect(
        await accounts.linkIdentity(a.userId, { ...password, username: `${username}2` }, linked(a.userId)),
      ).toBe("conflict");
      expect(await accounts.findPasswordCredential(username)).toEqual({
        userId: a.userId,
        passwordHash: "$argon2id$x",
      });
    });

    it("a phone login creates a user with both, finds one by either and links the other, and refuses two users", async () => {
      const number = phone();
      const identity = wechat();
      const first = await phoneLogin(identity, number);
      if (first === "conflict") throw new Error("conflict");
      expect(first).toMatchObject({ created: true, sessionStored: true, user: { phoneNumber: number } });

      // The same number from another app's openid: the same user, the identity linked.
      const otherApp = { ...wechat(), appId: "wxb" };
      const byPhone = await phoneLogin(otherApp, number);
      expect(byPhone).toMatchObject({ created: false, user: { id: first.user.id } });
      expect((await sessions.start(otherApp, newSession())).user.id).toBe(first.user.id);

      // A silent-login user proving a number: linked to them.
      const silent = await wechatUser();
      const silentIdentity = (await accounts.getUser(silent.userId))?.wechat[0];
      const newNumber = phone();
      const byIdentity = await phoneLogin(silentIdentity as ReturnType<typeof wechat>, newNumber);
      expect(byIdentity).toMatchObject({
        created: false,
        user: { id: silent.userId, phoneNumber: newNumber },
      });
      const types = (await accounts.listAudit({ subjectUserId: silent.userId, limit: 10 })).map(
        (e) => e.type,
      );
      expect(types).toContain("identity.linked");

      // The first user's number with the silent user's openid: two users, nothing written.
      const sessionsBefore = (await backend.sessionsOfUser(silent.userId)).length;
      expect(await phoneLogin(silentIdentity as ReturnType<typeof wechat>, number)).toBe("conflict");
      expect((await backend.sessionsOfUser(silent.userId)).length).toBe(sessionsBefore);
      expect((await accounts.getUser(silent.userId))?.user.phoneNumber).toBe(newNumber);
    });

    it("parallel phone logins of one person make one user", async () => {
      const number = phone();
      const identity = wechat();
      const results = await Promise.all(Array.from({ length: 8 }, () => phoneLogin(identity, number)));
      const started = results.filter((r) => r !== "conflict");
      expect(started).toHaveLength(8);
      expect(new Set(started.map((r) => r.user.id)).size).toBe(1);
      expect(started.filter((r) => r.created)).toHaveLength(1);
      // The same number from two apps at once: still one user.
      const twoApps = await Promise.all([
        phoneLogin({ ...wechat(), appId: "wxb" }, phone()),
        phoneLogin({ ...wechat(), appId: "wxc" }, number),
        phoneLogin({ ...wechat(), appId: "wxd" }, number),
      ]);
      expect(twoApps[1]).not.toBe("conflict");
      expect(twoApps[2]).not.toBe("conflict");
      expect((twoApps[1] as { user: { id: string } }).user.id).toBe(started[0]?.user.id);
      expect((twoApps[2] as { user: { id: string } }).user.id).toBe(started[0]?.user.id);
    });

    it("merges a user into another: identities and password move, the absorbed one is disabled and signed out", async () => {
      const role = uniqueName("r").toLowerCase();
      const survivor = await wechatUser();
      const absorbedIdentity = wechat();
      const absorbedStart = await phoneLogin(absorbedIdentity, phone());
      if (absorbedStart === "conflict") throw new Error("conflict");
      const absorbedId = absorbedStart.user.id;
      const absorbedNumber = absorbedStart.user.phoneNumber;
      const username = uniqueName("u").toLowerCase();
      await accounts.linkIdentity(
        absorbedId,
        { kind: "password", username, passwordHash: "h" },
        linked(absorbedId),
      );
      await accounts.setRoles(absorbedId, [role], new Date(), audit("roles.changed", absorbedId));

      const now = new Date();
      const outcome = await accounts.mergeUsers(
        survivor.userId,
        absorbedId,
        now,
        audit("users.merged", survivor.userId),
      );
      if (!outcome.merged) throw new Error(outcome.detail);
      // The absorbed user's session ended; the survivor's marked out of date (its roles grew).
      expect(outcome.refused.filter((r) => r.staleBefore === undefined)).toHaveLength(1);
      expect(outcome.refused.filter((r) => r.staleBefore !== undefined)).toHaveLength(1);
      expect((await backend.sessionsOfUser(absorbedId)).every((s) => s.revokedAt !== null)).toBe(true);

      const merged = await accounts.getUser(survivor.userId);
      expect(merged?.user).toMatchObject({ phoneNumber: absorbedNumber, roles: [role] });
      expect(merged?.username).toBe(username);
      expect(merged?.wechat).toHaveLength(2);
      expect((await accounts.getUser(absorbedId))?.user).toMatchObject({
        mergedInto: survivor.userId,
        phoneNumber: null,
        disabledBy: "admin-1",
      });
      expect((await accounts.getUser(absorbedId))?.user.disabledAt).not.toBeNull();
      // Every way in of the absorbed user now reaches the survivor.
      expect((await sessions.start(absorbedIdentity, newSession())).user.id).toBe(survivor.userId);
      expect((await accounts.findPasswordCredential(username))?.userId).toBe(survivor.userId);
      expect(
        await accounts.listAudit({ subjectUserId: survivor.userId, type: "users.merged", limit: 1 }),
      ).toHaveLength(1);
      // Merged already: a second merge of it is refused as busy.
      const again = await accounts.mergeUsers(
        survivor.userId,
        absorbedId,
        now,
        audit("users.merged", survivor.userId),
      );
      expect(again).toMatchObject({ merged: false, why: "busy" });
    });

    it("refuses merges of unknown users, of two unionids, and of two usernames", async () => {
      const a = await wechatUser();
      const b = await wechatUser();
      const note = audit("users.merged", a.userId);
      expect(await accounts.mergeUsers(a.userId, randomUUID(), new Date(), note)).toMatchObject({
        merged: false,
        why: "not-found",
      });
      for (const user of [a, b])
        await accounts.linkIdentity(
          user.userId,
          { kind: "password", username: uniqueName("u").toLowerCase(), passwordHash: "h" },
          linked(user.userId),
        );
      expect(await accounts.mergeUsers(a.userId, b.userId, new Date(), note)).toMatchObject({
        merged: false,
        why: "conflict",
      });
      const c = await sessions.start(wechat(uniqueName("u")), newSession());
      const d = await sessions.start(wechat(uniqueName("u")), newSession());
      expect(await accounts.mergeUsers(c.user.id, d.user.id, new Date(), note)).toMatchObject({
        merged: false,
        why: "conflict",
      });
      expect((await accounts.getUser(d.user.id))?.user.mergedInto).toBeNull();
    });

    it("of two overlapping merges one wins and the other is refused as busy", async () => {
      for (let round = 0; round < 5; round++) {
        const a = await wechatUser();
        const b = await wechatUser();
        const c = await wechatUser();
        const outcomes = await Promise.all([
          accounts.mergeUsers(a.userId, b.userId, new Date(), audit("users.merged", a.userId)),
          accounts.mergeUsers(c.userId, b.userId, new Date(), audit("users.merged", c.userId)),
        ]);
        expect(outcomes.filter((o) => o.merged)).toHaveLength(1);
        expect(outcomes.filter((o) => !o.merged && o.why === "busy")).toHaveLength(1);
        const winner = outcomes[0]?.merged ? a.userId : c.userId;
        expect((await accounts.getUser(b.userId))?.user.mergedInto).toBe(winner);
        expect((await accounts.getUser(winner))?.wechat).toHaveLength(2);
      }
    });
  });
});
