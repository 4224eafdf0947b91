import { pathToFileURL } from "node:url";
import { keyEncryptionKey } from "./app/key-encryption-key.js";
import { type Config, ConfigError, parseConfig, readEnv } from "./config.js";
import { type Clock, systemClock } from "./domain/ports.js";
import { createSealer } from "./domain/sealing.js";
import { topics } from "./domain/storage-keys.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { createKeyRing, keyRotationSettings } from "./signing-keys/key-ring.js";
import { openDatabase } from "./store/pg/database.js";
import { createPgSigningKeyStore } from "./store/pg/signing-key-store.js";
import { createRedisBroadcast } from "./store/redis/broadcast.js";
import { connectRedis } from "./store/redis/connection.js";

export interface RotationReport {
  rotated: boolean;
  kid: string;
  activatesAt: Date;
  /** The keys in JWKS after the rotation, with when each retires (null: not scheduled). */
  keys: Array<{ kid: string; activatesAt: Date; retiresAt: Date | null }>;
}

/**
 * `npm run keys:rotate`: publishes a new signing key that signs from SIGNING_KEY_PUBLISH_AHEAD
 * on and schedules the current key's retirement once the longest access token signed with it has
 * expired. Running instances are told through Redis at once (and reload within a minute anyway).
 * The embedded database belongs to one process: stop the service first, or use
 * SIGNING_KEY_ROTATION_INTERVAL instead.
 */
export async function rotateSigningKey(
  config: Readonly<Config>,
  options: { clock?: Clock; log?: Logger } = {},
): Promise<RotationReport> {
  const log = options.log ?? createLogger(config.logLevel);
  const kek = await keyEncryptionKey(config, log);
  const database = await openDatabase(config, { maxConnections: 1 });
  try {
    await database.migrate();
    const keyRing = createKeyRing({
      store: createPgSigningKeyStore(database.db),
      sealer: createSealer(kek, "signing-key"),
      clock: options.clock ?? systemClock,
      settings: { ...keyRotationSettings(config.signingKeys, config.tokens), rotationIntervalMs: 0 },
    });
    await keyRing.load();
    const { rotated, next } = await keyRing.rotate();
    if (rotated && config.redis) {
      const redis = connectRedis(config.redis);
      const broadcast = createRedisBroadcast(redis, {
        topology: config.redis,
        prefix: config.redisKeyPrefix,
      });
      try {
        await broadcast.publish(topics.signingKeys, "rotated");
      } finally {
        await broadcast.close();
        redis.disconnect();
      }
    }
    return {
      rotated,
      kid: next.kid,
      activatesAt: next.activatesAt,
      keys: keyRing.keys().map(({ kid, activatesAt, retiresAt }) => ({ kid, activatesAt, retiresAt })),
    };
  } finally {
    await database.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const report = await rotateSigningKey(parseConfig(readEnv()));
    process.stdout.write(
      report.rotated
        ? `new signing key ${report.kid}: published now, signs from ${report.activatesAt.toISOString()}\n`
        : `not rotated: key ${report.kid} is already waiting to sign from ${report.activatesAt.toISOString()}\n`,
    );
    for (const k of report.keys) {
      process.stdout.write(
        `  ${k.kid}  signs from ${k.activatesAt.toISOString()}  retires ${k.retiresAt?.toISOString() ?? "(not scheduled)"}\n`,
      );
    }
  } catch (err) {
    process.stderr.write(
      `${err instanceof ConfigError ? err.message : `rotation failed: ${(err as Error).message}`}\n`,
    );
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
}
