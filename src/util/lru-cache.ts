interface Entry<V> {
  value: V;
  /** The insertion counter when the entry was last put at the young end. */
  touched: number;
}

/**
 * A bounded, approximately least-recently-used cache on a Map (which keeps insertion order):
 * an insert past capacity evicts from the old end. A hit moves the entry to the young end only
 * once it has drifted into the older half, so a hot key costs one Map lookup per hit, not a
 * delete and a re-insert. An entry used at least once per half-capacity of inserts is therefore
 * never evicted.
 */
export class LruCache<K, V> {
  readonly #entries = new Map<K, Entry<V>>();
  #inserts = 0;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new Error("LruCache capacity must be at least 1");
  }

  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (this.#inserts - entry.touched >= this.capacity / 2) {
      this.#entries.delete(key);
      entry.touched = ++this.#inserts;
      this.#entries.set(key, entry);
    }
    return entry.value;
  }

  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, { value, touched: ++this.#inserts });
    if (this.#entries.size > this.capacity) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** How many of a token's last characters key a TokenCache: signature bytes, unique enough. */
const TOKEN_KEY_CHARS = 32;

/**
 * An LruCache keyed by bearer tokens. Hashing a whole ~700-character JWT for every lookup cost
 * a noticeable share of a warm VerifyToken (docs/benchmarks.md), so the key is the token's tail (signature bytes) and a hit
 * is compared with the whole token: a token that only shares the tail, such as a forgery reusing
 * a genuine signature, misses.
 */
export class TokenCache<V> {
  readonly #entries: LruCache<string, { token: string; value: V }>;

  constructor(capacity: number) {
    this.#entries = new LruCache(capacity);
  }

  get(token: string): V | undefined {
    const entry = this.#entries.get(token.slice(-TOKEN_KEY_CHARS));
    return entry !== undefined && entry.token === token ? entry.value : undefined;
  }

  set(token: string, value: V): void {
    this.#entries.set(token.slice(-TOKEN_KEY_CHARS), { token, value });
  }
}
