import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config.js";
import type { Logger } from "../observability/logger.js";

const KEK_FILE = "key-encryption-key";

/**
 * The key-encryption key: from the config, or (outside production, where the config refuses to
 * start without one) a file in the data folder, created on first start.
 */
export async function keyEncryptionKey(
  config: Pick<Config, "keyEncryptionKey" | "dataDir">,
  log: Logger,
): Promise<Buffer> {
  if (config.keyEncryptionKey) return config.keyEncryptionKey;
  if (config.dataDir === "memory://") return randomBytes(32); // nothing is kept, so neither is the key
  const file = join(config.dataDir, KEK_FILE);
  try {
    const key = Buffer.from((await readFile(file, "utf8")).trim(), "base64");
    if (key.length === 32) return key;
    throw new Error(`${file} does not hold 32 bytes of base64`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(config.dataDir, { recursive: true });
  const key = randomBytes(32);
  await writeFile(file, key.toString("base64"), { mode: 0o600 });
  log.warn(
    "generated a key-encryption key; set KEY_ENCRYPTION_KEY instead in production, the same on every instance",
    { file },
  );
  return key;
}
