import type { UserStore } from "../../domain/ports.js";
import type { MemoryDatabase } from "./memory-database.js";

/** UserStore on the in-memory tables (see memory-database.ts). */
export function createMemoryUserStore(db: MemoryDatabase): UserStore {
  return {
    async bindPhoneNumber(userId, phoneNumber) {
      const user = db.users.get(userId);
      if (user) user.phoneNumber = phoneNumber;
    },
  };
}
