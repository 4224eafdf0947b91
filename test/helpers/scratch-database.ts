import { randomBytes } from "node:crypto";
import postgres from "postgres";

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString("hex")}`;
}

/**
 * A fresh database on a real server, dropped afterwards: each test file gets one so files can
 * run in parallel, and each benchmark run gets one so its figures do not depend on how many runs
 * filled the tables before.
 */
export async function createScratchDatabase(
  serverUrl: string,
  prefix = "identity_test",
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = uniqueName(prefix);
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const again = postgres(serverUrl, { max: 1, onnotice: () => {} });
      await again.unsafe(`drop database if exists "${name}" with (force)`);
      await again.end();
    },
  };
}
