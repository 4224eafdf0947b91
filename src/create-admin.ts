import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { createStaffAccount } from "./accounts/admin.js";
import { createPasswordHasher } from "./accounts/password-hasher.js";
import { type Config, ConfigError, parseConfig, readEnv } from "./config.js";
import { IdentityError } from "./domain/errors.js";
import type { UserDetails } from "./domain/ports.js";
import { createPgAccountStore } from "./store/pg/account-store.js";
import { openDatabase } from "./store/pg/database.js";

/**
 * `npm run admin:create -- --username alice [--roles admin,ops] < password-file`: creates a staff
 * account (by default with the admin role, which ROLE_PERMISSIONS grants identity:admin) so that
 * the first administrator can log in with LoginWithPassword and call AdminService. The password
 * comes on stdin, never as an argument (arguments show in `ps` and shell history). The embedded
 * database belongs to one process: stop the service first, or use AdminService.
 */
export async function createAdminAccount(
  config: Readonly<Config>,
  account: { username: string; password: string; roles: string[] },
): Promise<UserDetails> {
  const database = await openDatabase(config, { maxConnections: 1 });
  try {
    await database.migrate();
    const accounts = createPgAccountStore(database.db, {
      maxAccessTokenTtlMs: config.tokens.accessTokenTtlMs,
    });
    await accounts.seedRoles(config.accounts.rolePermissions);
    const now = new Date();
    return await createStaffAccount(
      {
        accounts,
        hasher: createPasswordHasher(config.accounts.passwordHash),
        passwordMinLength: config.accounts.passwordMinLength,
      },
      { ...account, now },
      (userId, username) => ({
        at: now,
        type: "staff_account.created",
        actor: "cli",
        subjectUserId: userId,
        ip: "",
        userAgent: "",
        details: { username, roles: account.roles, method: "admin:create" },
      }),
    );
  } finally {
    await database.close();
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // One trailing newline is the file's or the echo's, not the password's.
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const { values } = parseArgs({
      options: { username: { type: "string" }, roles: { type: "string", default: "admin" } },
    });
    if (!values.username) throw new ConfigError(["--username: required (the password is read from stdin)"]);
    const user = await createAdminAccount(parseConfig(readEnv()), {
      username: values.username,
      password: await readStdin(),
      roles: values.roles.split(",").filter((r) => r !== ""),
    });
    process.stdout.write(
      `staff account ${user.username} created: user ${user.user.id}, roles ${user.user.roles.join(", ") || "(none)"}, permissions ${user.permissions.join(", ") || "(none)"}\n`,
    );
  } catch (err) {
    const known = err instanceof ConfigError || err instanceof IdentityError;
    process.stderr.write(
      `${known ? (err as Error).message : `admin:create failed: ${(err as Error).message}`}\n`,
    );
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
}
