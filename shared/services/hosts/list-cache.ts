/**
 * Rendered `GET /v1/admin/hosts` bodies, each stored with what it was rendered from
 * (docs/architecture.md#read-paths). A body is served only when what the request has just read
 * from Postgres proves it current, so the cache never decides freshness on its own: every request
 * still asks the database, in its own snapshot, and a write committed before the request started
 * (anyone's, the caller's included) is always seen. It saves only the part that costs: mapping,
 * rendering and serialising 200 rows (most of the list's CPU; issue 12).
 *
 * Two proofs, checked in one statement (shared/services/hosts/read-queries.ts, prepareCheck):
 * the request's snapshot equals `snapshot` (nothing was committed anywhere since the body was
 * known to be current), or the page's stamp equals `stamp` (the very row versions it was rendered
 * from); the latter then moves `snapshot` to the request's.
 *
 * Keys carry the whole query (filter, limit, offset). The route is admin-only and the body depends
 * on nothing but the key and the rows, never on who asks.
 */
export interface StampedEntry {
  /** The page's stamp (pageStamp) when the body was rendered. */
  stamp: string;
  /** A snapshot in which the body was current; undefined when none is known (an empty page). */
  snapshot: string | undefined;
  /** The JSON, encoded once: serving it then costs no per-request UTF-8 encoding of ~90 kB. */
  body: Uint8Array;
  storedAt: number;
}

export interface HostListCacheOptions {
  /** Distinct queries kept (a few filters × pages in practice); the oldest goes first. */
  maxEntries?: number;
  /**
   * An entry is dropped this long after it was stored even when it still matches. Not for
   * freshness (the proofs decide that) but so that no stamp lives long enough for Postgres to hand
   * out the same transaction id again (2^32 of them later): see hostRowStamp.
   */
  maxAgeMs?: number;
}

export class HostListCache {
  private readonly entries = new Map<string, StampedEntry>();
  private readonly maxEntries: number;
  private readonly maxAgeMs: number;

  constructor(opts: HostListCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 64;
    this.maxAgeMs = opts.maxAgeMs ?? 5 * 60_000;
  }

  /** The entry stored under `key`, unless it is too old (or the clock went back past it). */
  entry(key: string, now: number): StampedEntry | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (now - e.storedAt > this.maxAgeMs || now < e.storedAt) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  /**
   * The entry's body if `seen` proves it current: the same snapshot (`stamp: null`, what the
   * check answers when the snapshot it was given is the request's) or the same stamp.
   */
  serve(e: StampedEntry, seen: { snapshot: string; stamp: string | null }): Uint8Array | undefined {
    if (seen.stamp === null) return e.snapshot !== undefined && seen.snapshot === e.snapshot ? e.body : undefined;
    if (seen.stamp !== e.stamp) return undefined;
    // Same row versions in this newer snapshot: the body is current in it too.
    e.snapshot = seen.snapshot;
    return e.body;
  }

  set(key: string, value: Omit<StampedEntry, "storedAt">, now: number): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { ...value, storedAt: now });
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}
