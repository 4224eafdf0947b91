import { eq } from "drizzle-orm";
import type { UserStore } from "../../domain/ports.js";
import type { Database } from "./database.js";
import { users } from "./schema.js";

export function createPgUserStore(db: Database): UserStore {
  return {
    async bindPhoneNumber(userId, phoneNumber) {
      await db.update(users).set({ phoneNumber }).where(eq(users.id, userId));
    },
  };
}
