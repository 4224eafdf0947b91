import type { UserStore } from "../../domain/ports.js";
import type { MemoryDatabase } from "./memory-database.js";

/** UserStore on the in-memory tables (see memory-database.ts). */
export function createMemoryUserStore(db: MemoryDatabase): UserStore {
  return {
    async updateProfile(userId, change) {
      const user = db.users.get(userId);
      if (!user) return null;
      if (change.nickname !== undefined) user.nickname = change.nickname;
      if (change.avatarUrl !== undefined) user.avatarUrl = change.avatarUrl;
      return { ...user, roles: [...user.roles] };
    },
  };
}
