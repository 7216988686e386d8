import { z } from "zod";
import { engineStates } from "../db/schema/engines.js";
import { hostStatuses } from "../db/schema/hosts.js";

/**
 * GET /v1/admin/dashboard/charts (docs/api.md#dashboard-charts): the dashboard's time series.
 * Its own file so the chart shapes do not crowd shared/views/index.ts (which re-exports it); the
 * UI imports the types only.
 */

const uuid = z.string().uuid();
/** ISO-8601 timestamps, as `Date.toISOString()` writes them. */
const timestamp = z.string();
const count = () => z.number().int();
/** Milliseconds; null when no task in the group has both a start and an end. */
const ms = () => z.number().int().nullable();

export const chartWindows = ["24h", "7d", "30d"] as const;
export type ChartWindow = (typeof chartWindows)[number];

const taskOutcomes = { succeeded: count(), failed: count(), canceled: count() };

export const dashboardChartsView = z.object({
  window: z.enum(chartWindows),
  /** `hour` for 24h, `day` for 7d and 30d; buckets are aligned to UTC. */
  bucket: z.enum(["hour", "day"]),
  /** [since, until): `until` is the end of the bucket holding the reference time (now, or `until` of the query). */
  since: timestamp,
  until: timestamp,
  /** The start of every bucket, oldest first; every per-bucket array below has this length. */
  buckets: z.array(timestamp),
  tasks: z.object({
    /** Tasks that ended (finished_at) in each bucket, by outcome, and the p50/p95 of their run time (finished_at − started_at). */
    by_bucket: z.array(z.object({ ...taskOutcomes, p50_ms: ms(), p95_ms: ms() })),
    /** One row per kind that ended in the window: outcomes and run time over the window, and the count per bucket. */
    by_kind: z.array(z.object({ kind: z.string(), ...taskOutcomes, p50_ms: ms(), p95_ms: ms(), per_bucket: z.array(count()) })),
  }),
  /** Hosts by status now (every status, zeros included). */
  hosts: z.object({ by_status: z.object(Object.fromEntries(hostStatuses.map((s) => [s, count()])) as Record<(typeof hostStatuses)[number], ReturnType<typeof count>>) }),
  /** SSH and desktop sessions that started in each bucket (the `sessions` table). */
  sessions: z.object({ by_bucket: z.array(z.object({ ssh: count(), desktop: count() })) }),
  /** Every engine: hosts placed on it against max_hosts (null = not limited), and its warm pool by state. */
  engines: z.array(
    z.object({
      id: z.string(),
      state: z.enum(engineStates),
      hosts: count(),
      max_hosts: z.number().int().nullable(),
      pool: z.object({ warming: count(), ready: count(), claimed: count(), draining: count() }),
    }),
  ),
  /** Egress attestations in the window, per egress IP that had any, and its latest verdict (before `until`). */
  attestations: z.array(
    z.object({
      egress_ip_id: uuid,
      /** null when the egress IP has been deleted since. */
      label: z.string().nullable(),
      passed: count(),
      failed: count(),
      latest_verdict: z.enum(["passed", "failed"]),
      latest_at: timestamp,
      latest_error_code: z.string().nullable(),
    }),
  ),
});
export type DashboardChartsView = z.output<typeof dashboardChartsView>;
