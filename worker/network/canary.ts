import { backoff, sleep } from "./backoff.js";

/**
 * The DNS canary's query-source API, served by checkd (checkd/server.ts):
 * `GET <EGRESS_DNS_CANARY_API>/v1/canary/<fqdn>` with `Authorization: Bearer
 * <EGRESS_DNS_CANARY_API_SECRET>` → `{"name":"…","sources":["203.0.113.20"],…}` (an unknown name:
 * `sources: []`). Polled until the name shows up, for at most `maxWaitMs` (2 s), with a back-off
 * from 5 ms up to 100 ms (the canary records a query before it answers it, so the first read after
 * the probe's lookup usually has it); once seen, read once more shortly after, so a second source
 * (a leak racing the tunnel) is not missed.
 */
export type CanaryFetch = (
  url: string,
  init: { signal: AbortSignal; headers: Record<string, string> },
) => Promise<{ status: number; json(): Promise<unknown> }>;

const defaultFetch: CanaryFetch = (url, init) => fetch(url, { ...init, redirect: "error" });

export interface CanaryApi {
  url: string;
  secret: string;
}

/** The poll's back-off cap. */
export const CANARY_POLL_MS = 100;
const SETTLE_MS = 150;
/** The cap while the probe's lookups are still running (canarySources `until`). */
const EARLY_POLL_MS = 20;

async function readSources(api: CanaryApi, name: string, fetcher: CanaryFetch): Promise<string[] | null> {
  const url = new URL(`v1/canary/${encodeURIComponent(name)}`, api.url.endsWith("/") ? api.url : `${api.url}/`);
  try {
    const res = await fetcher(url.toString(), { signal: AbortSignal.timeout(1000), headers: { authorization: `Bearer ${api.secret}` } });
    if (res.status !== 200) return null;
    const body = (await res.json()) as { sources?: unknown };
    if (!Array.isArray(body?.sources)) return null;
    return body.sources.filter((s): s is string => typeof s === "string");
  } catch {
    return null;
  }
}

/**
 * The sources the canary saw for `name`; `null` when the canary itself could not be read.
 * With `until` (the probe's exec), polling starts while the lookups are still running, with a
 * short cap, and the `maxWaitMs` budget counts from when `until` settles: the settle read then
 * overlaps the rest of the probe's checks instead of following them (issue 12).
 */
export async function canarySources(
  api: CanaryApi,
  name: string,
  opts: { maxWaitMs?: number; fetcher?: CanaryFetch; until?: Promise<unknown> } = {},
): Promise<string[] | null> {
  const fetcher = opts.fetcher ?? defaultFetch;
  const maxWait = opts.maxWaitMs ?? 2000;
  let deadline = opts.until ? Number.POSITIVE_INFINITY : Date.now() + maxWait;
  let delays = backoff({ firstMs: 5, capMs: opts.until ? EARLY_POLL_MS : CANARY_POLL_MS });
  const settled = () => {
    deadline = Date.now() + maxWait;
    delays = backoff({ firstMs: 5, capMs: CANARY_POLL_MS });
  };
  opts.until?.then(settled, settled);
  let answered = false;
  for (;;) {
    const s = await readSources(api, name, fetcher);
    if (s) answered = true;
    if (s && s.length > 0) {
      await sleep(SETTLE_MS);
      const again = await readSources(api, name, fetcher);
      return [...new Set([...s, ...(again ?? [])])];
    }
    if (Date.now() >= deadline) return answered ? [] : null;
    await sleep(delays.next(Number.isFinite(deadline) ? deadline : undefined));
  }
}
