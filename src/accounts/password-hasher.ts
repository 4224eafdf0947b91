import { type Algorithm, hash, verify } from "@node-rs/argon2";
import { invalidArgument } from "../domain/errors.js";

/** Algorithm.Argon2id: the package declares it as a const enum, which this build cannot import. */
const ARGON2ID = 2 as Algorithm;

/** argon2id's cost (PASSWORD_HASH_MEMORY_KIB, PASSWORD_HASH_ITERATIONS); one lane. */
export interface PasswordHashSettings {
  memoryKib: number;
  iterations: number;
}

/**
 * Passwords as argon2id hashes (PHC strings: the parameters travel with each hash, so a change of
 * settings applies to new hashes and old ones still verify). @node-rs/argon2 runs on libuv's
 * thread pool and ships prebuilt, without an install script.
 */
export function createPasswordHasher(settings: PasswordHashSettings) {
  const options = {
    algorithm: ARGON2ID,
    memoryCost: settings.memoryKib,
    timeCost: settings.iterations,
    parallelism: 1,
  };
  /** A hash of nothing anyone knows: an unknown username costs the same verification as a known one. */
  let decoy: Promise<string> | undefined;
  return {
    hash: (password: string) => hash(password, options),
    /** False for a malformed hash too (never throws on a stored value). */
    verify: (stored: string, password: string) => verify(stored, password).catch(() => false),
    /** Spends what a verification spends, for a username that has no hash. */
    async verifyDecoy(password: string): Promise<false> {
      decoy ??= hash(crypto.randomUUID(), options);
      await verify(await decoy, password).catch(() => false);
      return false;
    },
  };
}

export type PasswordHasher = ReturnType<typeof createPasswordHasher>;

/** A username as stored and looked up: one account per name whatever its case. */
export const normalizeUsername = (username: string) => username.trim().toLowerCase();

/**
 * A username (lowercased) and the hash of a password, once both pass the rules: for a new staff
 * account and for a password linked to an existing user.
 */
export async function newPasswordCredential(
  deps: { hasher: PasswordHasher; passwordMinLength: number },
  rawUsername: string,
  password: string,
): Promise<{ username: string; passwordHash: string }> {
  const username = normalizeUsername(rawUsername);
  if (!/^[a-z0-9._@-]{3,64}$/.test(username))
    throw invalidArgument("username", "3 to 64 characters: letters, digits and . _ - @");
  if ([...password].length < deps.passwordMinLength)
    throw invalidArgument("password", `at least ${deps.passwordMinLength} characters`);
  return { username, passwordHash: await deps.hasher.hash(password) };
}
