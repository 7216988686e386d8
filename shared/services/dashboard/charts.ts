import { sql } from "drizzle-orm";
import { hostStatuses } from "../../db/schema/index.js";
import { Invalid } from "../../errors.js";
import type { ChartWindow, DashboardChartsView } from "../../views/dashboard-charts.js";
import type { ServiceContext } from "../context.js";
import type { DashboardChartsQuery } from "./charts-query.js";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** Each window's bucket: fixed, so a response holds at most 30 buckets per series (bounded work and payload). */
const WINDOWS: Record<ChartWindow, { unit: "hour" | "day"; stepMs: number; n: number }> = {
  "24h": { unit: "hour", stepMs: HOUR_MS, n: 24 },
  "7d": { unit: "day", stepMs: DAY_MS, n: 7 },
  "30d": { unit: "day", stepMs: DAY_MS, n: 30 },
};

/** The window's bounds: `until` is the end of the UTC bucket holding the reference time. */
export function chartBounds(window: ChartWindow, ref: Date): { since: Date; until: Date; buckets: Date[]; unit: "hour" | "day" } {
  const { unit, stepMs, n } = WINDOWS[window];
  // Hours and days both divide the epoch evenly in UTC (no leap seconds in JS time).
  const until = new Date(Math.floor(ref.getTime() / stepMs) * stepMs + stepMs);
  const since = new Date(until.getTime() - n * stepMs);
  const buckets = Array.from({ length: n }, (_, i) => new Date(since.getTime() + i * stepMs));
  return { since, until, buckets, unit };
}

type Row = Record<string, unknown>;
const num = (v: unknown) => Number(v ?? 0);
const msOrNull = (v: unknown) => (v === null || v === undefined ? null : Math.round(Number(v)));

/**
 * `GET /v1/admin/dashboard/charts` (docs/api.md#dashboard-charts): SQL aggregates (date_trunc on
 * UTC buckets, percentile_cont for run times) over a bounded window, read in one repeatable-read
 * snapshot like the counts of `dashboardStats`.
 */
export async function dashboardCharts({ ctx, query }: { ctx: ServiceContext; query: DashboardChartsQuery }): Promise<DashboardChartsView> {
  const now = ctx.clock();
  const ref = query.until ?? now;
  if (ref.getTime() > now.getTime()) throw Invalid([{ field: "query.until", message: "must not be in the future" }]);
  const { since, until, buckets, unit } = chartBounds(query.window, ref);
  const index = new Map(buckets.map((b, i) => [b.getTime(), i]));
  // The bucket of a timestamp column as epoch seconds; `unit` is one of two literals, never input.
  const bucketOf = (col: string) => sql.raw(`extract(epoch from date_trunc('${unit}', ${col}, 'UTC'))::bigint`);
  const slot = (v: unknown) => index.get(num(v) * 1000);
  // Bound as text with a cast: the driver's own Date serialisation is not relied on.
  const at = (d: Date) => sql`${d.toISOString()}::timestamptz`;
  const [s0, s1] = [at(since), at(until)];
  const n = buckets.length;
  const zeros = () => new Array<number>(n).fill(0);

  return ctx.db.transaction(
    async (tx) => {
      const rows = async (q: ReturnType<typeof sql>) => (await tx.execute(q)) as unknown as Row[];

      // Tasks: the ones that ended in the window, by when they ended.
      const ended = sql`status in ('succeeded', 'failed', 'canceled') and finished_at >= ${s0} and finished_at < ${s1}`;
      const runMs = sql.raw(`extract(epoch from (finished_at - started_at)) * 1000`);
      const pct = (p: number) => sql`percentile_cont(${sql.raw(String(p))}) within group (order by ${runMs}) filter (where started_at is not null)`;
      const taskRows = await rows(sql`
        select ${bucketOf("finished_at")} as b, kind, status, count(*)::int as n
        from tasks where ${ended} group by 1, 2, 3`);
      const bucketDur = await rows(sql`
        select ${bucketOf("finished_at")} as b, ${pct(0.5)} as p50, ${pct(0.95)} as p95
        from tasks where ${ended} group by 1`);
      const kindDur = await rows(sql`
        select kind, ${pct(0.5)} as p50, ${pct(0.95)} as p95
        from tasks where ${ended} group by 1`);

      const byBucket = buckets.map(() => ({ succeeded: 0, failed: 0, canceled: 0, p50_ms: null as number | null, p95_ms: null as number | null }));
      type KindRow = DashboardChartsView["tasks"]["by_kind"][number];
      const byKind = new Map<string, KindRow>();
      for (const r of taskRows) {
        const i = slot(r.b);
        if (i === undefined) continue;
        const status = r.status as "succeeded" | "failed" | "canceled";
        const kind = String(r.kind);
        byBucket[i]![status] += num(r.n);
        let k = byKind.get(kind);
        if (!k) byKind.set(kind, (k = { kind, succeeded: 0, failed: 0, canceled: 0, p50_ms: null, p95_ms: null, per_bucket: zeros() }));
        k[status] += num(r.n);
        k.per_bucket[i]! += num(r.n);
      }
      for (const r of bucketDur) {
        const i = slot(r.b);
        if (i === undefined) continue;
        byBucket[i]!.p50_ms = msOrNull(r.p50);
        byBucket[i]!.p95_ms = msOrNull(r.p95);
      }
      for (const r of kindDur) {
        const k = byKind.get(String(r.kind));
        if (!k) continue;
        k.p50_ms = msOrNull(r.p50);
        k.p95_ms = msOrNull(r.p95);
      }

      // Hosts by status now. Their history is not derivable: not every transition writes an event.
      const byStatus = Object.fromEntries(hostStatuses.map((s) => [s, 0])) as Record<(typeof hostStatuses)[number], number>;
      for (const r of await rows(sql`select status, count(*)::int as n from hosts group by 1`)) {
        byStatus[r.status as (typeof hostStatuses)[number]] = num(r.n);
      }

      // Sessions by when they started (the sessions table is the record; docs/sessions.md).
      const sessionBuckets = buckets.map(() => ({ ssh: 0, desktop: 0 }));
      for (const r of await rows(sql`
        select ${bucketOf("started_at")} as b, kind, count(*)::int as n
        from sessions where started_at >= ${s0} and started_at < ${s1} group by 1, 2`)) {
        const i = slot(r.b);
        if (i === undefined || (r.kind !== "ssh" && r.kind !== "desktop")) continue;
        sessionBuckets[i]![r.kind] += num(r.n);
      }

      // Engines: placed hosts against max_hosts, and the warm pool by state.
      const engineRows = await rows(sql`
        select e.id, e.state, e.max_hosts,
          (select count(*)::int from hosts h where h.engine_id = e.id) as hosts,
          count(p.id) filter (where p.state = 'warming')::int as warming,
          count(p.id) filter (where p.state = 'ready')::int as ready,
          count(p.id) filter (where p.state = 'claimed')::int as claimed,
          count(p.id) filter (where p.state = 'draining')::int as draining
        from engines e left join host_pool p on p.engine_id = e.id
        group by e.id order by e.id`);

      // Attestations per egress in the window, and each one's latest verdict before `until`.
      const attRows = await rows(sql`
        with counts as (
          select egress_ip_id,
            count(*) filter (where verdict = 'passed')::int as passed,
            count(*) filter (where verdict = 'failed')::int as failed
          from egress_attestations where attested_at >= ${s0} and attested_at < ${s1}
          group by 1
        ), latest as (
          select distinct on (a.egress_ip_id) a.egress_ip_id, a.verdict, a.error_code,
            (extract(epoch from a.attested_at) * 1000)::bigint as at_ms
          from egress_attestations a join counts c using (egress_ip_id)
          where a.attested_at < ${s1}
          order by a.egress_ip_id, a.attested_at desc, a.id desc
        )
        select c.egress_ip_id, e.label, c.passed, c.failed, l.verdict, l.error_code, l.at_ms
        from counts c join latest l using (egress_ip_id) left join egress_ips e on e.id = c.egress_ip_id
        order by c.failed desc, e.label nulls last, c.egress_ip_id`);

      return {
        window: query.window,
        bucket: unit,
        since: since.toISOString(),
        until: until.toISOString(),
        buckets: buckets.map((b) => b.toISOString()),
        tasks: { by_bucket: byBucket, by_kind: [...byKind.values()].sort((a, b) => a.kind.localeCompare(b.kind)) },
        hosts: { by_status: byStatus },
        sessions: { by_bucket: sessionBuckets },
        engines: engineRows.map((r) => ({
          id: String(r.id),
          state: r.state as DashboardChartsView["engines"][number]["state"],
          hosts: num(r.hosts),
          max_hosts: r.max_hosts === null || r.max_hosts === undefined ? null : num(r.max_hosts),
          pool: { warming: num(r.warming), ready: num(r.ready), claimed: num(r.claimed), draining: num(r.draining) },
        })),
        attestations: attRows.map((r) => ({
          egress_ip_id: String(r.egress_ip_id),
          label: r.label === null || r.label === undefined ? null : String(r.label),
          passed: num(r.passed),
          failed: num(r.failed),
          latest_verdict: r.verdict as "passed" | "failed",
          latest_at: new Date(num(r.at_ms)).toISOString(),
          latest_error_code: r.error_code === null || r.error_code === undefined ? null : String(r.error_code),
        })),
      };
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}
