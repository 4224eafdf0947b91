import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config.js";
import { createAdminAccount } from "../../src/create-admin.js";
import { type BACKENDS, startTestApp, type TestApp } from "./test-app.js";

/** The first administrator's password (username "Alice", role admin). */
export const ADMIN_PASSWORD = "correct horse battery staple";

/**
 * The service with a first administrator made by `admin:create` (createAdminAccount): on the
 * embedded backend before the start, in the PGlite folder the service then opens (the embedded
 * database belongs to one process), on a real Postgres while it runs.
 */
export async function startWithAdmin(
  backend: (typeof BACKENDS)[number],
): Promise<{ t: TestApp; done(): Promise<void> }> {
  const admin = { username: "Alice", password: ADMIN_PASSWORD, roles: ["admin"] };
  if (backend === "embedded") {
    const dataDir = await mkdtemp(join(tmpdir(), "identity-accounts-"));
    await createAdminAccount(parseConfig({ DATA_DIR: dataDir }), admin);
    const t = await startTestApp(backend, { DATA_DIR: dataDir });
    return {
      t,
      done: async () => {
        await t.stop();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  }
  const t = await startTestApp(backend);
  await createAdminAccount(t.config, admin);
  return { t, done: () => t.stop() };
}

/** An access token of the first administrator. */
export async function adminAccessToken(t: TestApp): Promise<string> {
  const login = await t.connect.loginWithPassword({ username: "alice", password: ADMIN_PASSWORD });
  return login.tokens?.accessToken as string;
}
