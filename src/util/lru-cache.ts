interface Entry<V> {
  value: V;
  /** The insertion counter when the entry was last put at the young end. */
  touched: number;
}

/**
 * A bounded, approximately least-recently-used cache on a Map (which keeps insertion order):
 * an insert past capacity evicts from the old end. A hit moves the entry to the young end only
 * once it has drifted into the older half, so a hot key costs one Map lookup per hit, not a
 * delete and a re-insert (with ~700-character token keys those were most of VerifyToken's own
 * time). An entry used at least once per half-capacity of inserts is therefore never evicted.
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

  delete(key: K): void {
    this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }
}
