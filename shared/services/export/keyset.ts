/**
 * Keyset paging for the NDJSON exports (docs/api.md#export): each page is one query for the rows
 * after the last one sent, in (timestamp, id) order. The cursor keeps the timestamp as Postgres
 * text (microseconds), not a JS Date (milliseconds), so rows sharing a millisecond are neither
 * skipped nor sent twice. Memory holds one page at a time, whatever the total.
 */
export interface KeysetCursor {
  /** The last row's timestamp, as `timestamptz::text`. */
  at: string;
  id: string;
}

export interface ExportPage<T> {
  items: T[];
  /** Where the next page starts; null when this page was the last. */
  next: KeysetCursor | null;
}

/** Rows read per query. */
export const EXPORT_BATCH = 500;

/** A pager: call it with the previous page's `next` (null first) until `next` is null. */
export type ExportPager<T> = (after: KeysetCursor | null) => Promise<ExportPage<T>>;

export function pageOf<R extends { at: string; id: string }, T>(rows: R[], batch: number, render: (r: R) => T): ExportPage<T> {
  const last = rows[rows.length - 1];
  return { items: rows.map(render), next: rows.length === batch && last ? { at: last.at, id: last.id } : null };
}
