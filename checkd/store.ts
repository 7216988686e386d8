/**
 * What the canary saw: name → the addresses that asked for it, with timestamps. Bounded in every
 * direction, because anyone on the internet can send queries for names of the zone:
 * - at most `maxNames` names; a new name beyond that evicts the least recently queried one (a Map
 *   keeps insertion order; a query re-inserts its name at the end);
 * - at most `maxSourcesPerName` addresses per name (further addresses are counted, not stored);
 * - a record older than `ttlMs` since its last query is gone (dropped when read, and the oldest
 *   are swept on every insert).
 * A check queries fresh random names and reads them back within seconds, so none of these bounds
 * is near what a real check needs.
 */

export interface SourceRecord {
  address: string;
  first_seen: string;
  last_seen: string;
  count: number;
}

interface Entry {
  lastMs: number;
  sources: Map<string, { firstMs: number; lastMs: number; count: number }>;
  /** Queries from addresses beyond the per-name cap. */
  dropped: number;
}

export interface CanaryStoreOptions {
  maxNames: number;
  maxSourcesPerName: number;
  ttlMs: number;
  now?: () => number;
}

export class CanaryStore {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(private readonly opts: CanaryStoreOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Record one query for `name` (already lowercased, no trailing dot) from `address`. */
  record(name: string, address: string): void {
    const now = this.now();
    this.sweep(now);
    let entry = this.entries.get(name);
    if (entry) {
      this.entries.delete(name); // re-inserted below: most recently queried last
    } else {
      entry = { lastMs: now, sources: new Map(), dropped: 0 };
      while (this.entries.size >= this.opts.maxNames) {
        const oldest = this.entries.keys().next().value as string;
        this.entries.delete(oldest);
      }
    }
    entry.lastMs = now;
    this.entries.set(name, entry);
    const src = entry.sources.get(address);
    if (src) {
      src.lastMs = now;
      src.count++;
    } else if (entry.sources.size < this.opts.maxSourcesPerName) {
      entry.sources.set(address, { firstMs: now, lastMs: now, count: 1 });
    } else {
      entry.dropped++;
    }
  }

  /** The sources seen for `name`, sorted by address; null when the name is unknown (or expired). */
  lookup(name: string): { sources: SourceRecord[]; dropped: number } | null {
    const now = this.now();
    const entry = this.entries.get(name);
    if (!entry) return null;
    if (now - entry.lastMs > this.opts.ttlMs) {
      this.entries.delete(name);
      return null;
    }
    const sources = [...entry.sources.entries()]
      .map(([address, s]) => ({
        address,
        first_seen: new Date(s.firstMs).toISOString(),
        last_seen: new Date(s.lastMs).toISOString(),
        count: s.count,
      }))
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    return { sources, dropped: entry.dropped };
  }

  /** Drop expired names from the front (the least recently queried); a bounded amount per call. */
  private sweep(now: number): void {
    let n = 0;
    for (const [name, entry] of this.entries) {
      if (now - entry.lastMs <= this.opts.ttlMs || n >= 64) break;
      this.entries.delete(name);
      n++;
    }
  }
}
