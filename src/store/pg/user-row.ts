import type { UserRecord } from "../../domain/ports.js";

/** A users row as raw SQL returns it (timestamps as Date or string, by driver). */
export interface UserRow {
  id: string;
  unionid: string | null;
  roles: string[];
  phone_number: string | null;
  nickname: string | null;
  avatar_url: string | null;
  disabled_at: Date | string | null;
  disabled_by: string | null;
  disabled_reason: string | null;
  merged_into: string | null;
  created_at: Date | string;
}

/** The users columns a UserRow has, for raw statements (with an optional table alias). */
export const userColumns = (alias = "") => {
  const a = alias ? `${alias}.` : "";
  return `${a}id, ${a}unionid, ${a}roles, ${a}phone_number, ${a}nickname, ${a}avatar_url, ${a}disabled_at, ${a}disabled_by, ${a}disabled_reason, ${a}merged_into, ${a}created_at`;
};

export const asDate = (value: Date | string) => (value instanceof Date ? value : new Date(value));

export function toUserRecord(row: UserRow): UserRecord {
  return {
    id: row.id,
    unionid: row.unionid,
    roles: row.roles,
    phoneNumber: row.phone_number,
    nickname: row.nickname,
    avatarUrl: row.avatar_url,
    disabledAt: row.disabled_at === null ? null : asDate(row.disabled_at),
    disabledBy: row.disabled_by,
    disabledReason: row.disabled_reason,
    mergedInto: row.merged_into,
    createdAt: asDate(row.created_at),
  };
}
