import { hash } from "node:crypto";
import { LRUCache } from "lru-cache";

/**
 * What one entry costs on the heap beyond its value's own strings: the key (a 32-character
 * digest), lru-cache's slots for it, and a small object of claims. Measured with `npm run
 * bench:token-cache`, which prints the real cost next to the estimate.
 */
const TOKEN_CACHE_ENTRY_BYTES = 285;

/** Heap bytes of a one-byte string of this length (V8: 16-byte header, 8-byte aligned). */
const stringBytes = (s: string) => 16 + ((s.length + 7) & ~7);

/**
 * The estimated heap cost of an entry whose value holds these strings and lists of strings (roles,
 * permissions): what a
 * TokenCache's `bytesOf` returns.
 */
export function entryBytes(strings: readonly string[], ...lists: ReadonlyArray<readonly string[]>): number {
  let bytes = TOKEN_CACHE_ENTRY_BYTES;
  for (const s of strings) bytes += stringBytes(s);
  for (const list of lists) for (const item of list) bytes += 8 + stringBytes(item);
  return bytes;
}

/**
 * Values looked up by bearer token, bounded in bytes and least recently used first out.
 *
 * The key is the SHA-256 of the whole token (~1 µs), not the token: a token is ~600 characters
 * and keeping it doubled an entry's cost (bench:token-cache), while a digest still tells a
 * forgery that reuses a genuine signature from the genuine token.
 */
export class TokenCache<V extends object> {
  readonly #entries: LRUCache<string, V>;
  /** getOrAdd's tallies (plain counts: a scrape reads them, the hot path only adds one). */
  hits = 0;
  misses = 0;

  constructor(options: {
    /** Most bytes the entries may cost, by `bytesOf`. */
    maxBytes: number;
    /** An entry's estimated heap cost, key and bookkeeping included. */
    bytesOf: (value: V) => number;
  }) {
    this.#entries = new LRUCache<string, V>({
      maxSize: options.maxBytes,
      sizeCalculation: (value) => options.bytesOf(value),
    });
  }

  get(token: string): V | undefined {
    return this.#entries.get(tokenKey(token));
  }

  set(token: string, value: V): void {
    this.#entries.set(tokenKey(token), value);
  }

  /** The value kept for `token`, or `make`'s, kept from now on; the token is digested once. */
  getOrAdd(token: string, make: () => V): V {
    const key = tokenKey(token);
    let value = this.#entries.get(key);
    if (value === undefined) {
      this.misses++;
      value = make();
      this.#entries.set(key, value);
    } else {
      this.hits++;
    }
    return value;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The entries' estimated bytes. */
  get bytes(): number {
    return this.#entries.calculatedSize;
  }
}

const tokenKey = (token: string) => hash("sha256", token, "binary");
