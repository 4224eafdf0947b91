import { and, eq, isNull } from "drizzle-orm";
import type { FindOrCreateResult, UserRecord, UserStore, WechatIdentity } from "../../domain/ports.js";
import type { Database } from "./database.js";
import { users, wechatIdentities } from "./schema.js";

/** Rolls back the transaction of a login that lost the race to create an identity. */
class LostCreationRace extends Error {}

export function createPgUserStore(db: Database): UserStore {
  async function findExisting(identity: WechatIdentity): Promise<FindOrCreateResult | null> {
    const rows = await db
      .select({ user: users, unionid: wechatIdentities.unionid })
      .from(wechatIdentities)
      .innerJoin(users, eq(users.id, wechatIdentities.userId))
      .where(and(eq(wechatIdentities.appId, identity.appId), eq(wechatIdentities.openid, identity.openid)))
      .limit(1);
    const row = rows[0];
    if (!row) return null;
    if (identity.unionid && row.unionid !== identity.unionid) {
      // WeChat gives a unionid once the app is bound to an Open Platform account: record it.
      await db
        .update(wechatIdentities)
        .set({ unionid: identity.unionid })
        .where(and(eq(wechatIdentities.appId, identity.appId), eq(wechatIdentities.openid, identity.openid)));
      // Give the user the unionid too unless someone else already holds it (no automatic merge).
      const updated = await db
        .update(users)
        .set({ unionid: identity.unionid })
        .where(and(eq(users.id, row.user.id), isNull(users.unionid)))
        .returning()
        .catch(() => []);
      return { user: updated[0] ?? row.user, unionid: identity.unionid, created: false };
    }
    return { user: row.user, unionid: row.unionid, created: false };
  }

  async function create(identity: WechatIdentity): Promise<FindOrCreateResult> {
    return db.transaction(async (tx) => {
      let user: UserRecord | undefined;
      if (identity.unionid) {
        // The person may already be known from another app of the same Open Platform account.
        [user] = await tx
          .insert(users)
          .values({ unionid: identity.unionid })
          .onConflictDoUpdate({ target: users.unionid, set: { unionid: identity.unionid } })
          .returning();
      } else {
        [user] = await tx.insert(users).values({}).returning();
      }
      if (!user) throw new Error("insert into users returned no row");
      const inserted = await tx
        .insert(wechatIdentities)
        .values({
          appId: identity.appId,
          openid: identity.openid,
          unionid: identity.unionid,
          userId: user.id,
        })
        .onConflictDoNothing()
        .returning({ userId: wechatIdentities.userId });
      // Someone created this identity first (the insert waited for their commit): undo ours.
      if (inserted.length === 0) throw new LostCreationRace();
      return { user, unionid: identity.unionid, created: true };
    });
  }

  return {
    async findOrCreateByWechat(identity) {
      const existing = await findExisting(identity);
      if (existing) return existing;
      try {
        return await create(identity);
      } catch (err) {
        if (!(err instanceof LostCreationRace)) throw err;
        const winner = await findExisting(identity);
        if (!winner) throw new Error("identity vanished after a creation race");
        return winner;
      }
    },
  };
}
