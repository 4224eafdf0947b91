import { eq } from "drizzle-orm";
import type { UserStore } from "../../domain/ports.js";
import type { Database } from "./database.js";
import { users } from "./schema.js";

export function createPgUserStore(db: Database): UserStore {
  return {
    async updateProfile(userId, change) {
      const [user] = await db
        .update(users)
        .set({ nickname: change.nickname, avatarUrl: change.avatarUrl })
        .where(eq(users.id, userId))
        .returning({
          id: users.id,
          unionid: users.unionid,
          roles: users.roles,
          phoneNumber: users.phoneNumber,
          nickname: users.nickname,
          avatarUrl: users.avatarUrl,
          disabledAt: users.disabledAt,
          disabledBy: users.disabledBy,
          disabledReason: users.disabledReason,
          mergedInto: users.mergedInto,
          createdAt: users.createdAt,
        });
      return user ?? null;
    },
  };
}
