import { v7 } from "uuid";

/**
 * The id of a new user or session: a UUIDv7, time-ordered, so each insert lands on the right-most
 * page of the primary key and of sessions_user_idx instead of a random page of a large index (with
 * UUIDv4 ids Postgres spent about 1.7 times the CPU per first login once the tables held 3,000,000
 * sessions: bench/scale.ts). Its first 48 bits are the creation time in milliseconds, which the
 * token's iat shows anyway.
 */
export const newRowId = (): string => v7();
