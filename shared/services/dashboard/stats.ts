import { and, eq, gt, isNotNull, lte, type SQL, sql } from "drizzle-orm";
import { egressIps, events, hostEgressBindings, hostPool, hosts, hostStatuses, tasks, users } from "../../db/schema/index.js";
import type { ServiceContext } from "../context.js";
import type { DashboardView } from "../../views/index.js";

type HostCounts = Record<(typeof hostStatuses)[number] | "total", number>;

/** `count(*) filter (where …)` as a JS number (Postgres returns bigint as a string). */
const countWhere = (cond: SQL | undefined) => sql<number>`count(*) filter (where ${cond})`.mapWith(Number);
const countAll = () => sql<number>`count(*)`.mapWith(Number);

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * `GET /v1/admin/dashboard/stats` (docs/api.md#dashboard): one aggregate query per table, read in one
 * repeatable-read snapshot so the numbers agree with each other.
 */
export async function dashboardStats({ ctx }: { ctx: ServiceContext }): Promise<DashboardView> {
  const now = ctx.clock();
  const dayAgo = new Date(now.getTime() - DAY_MS);
  return ctx.db.transaction(
    async (tx) => {
      // Users: role `user`, not deleted. Expiry is evaluated against the service clock, like the
      // user object's `expired` flag, so the two never disagree.
      const expired = and(isNotNull(users.expiresAt), lte(users.expiresAt, now));
      const [u] = await tx
        .select({
          total: countAll(),
          active: countWhere(sql`${users.status} = 'active' and not (${expired})`),
          disabled: countWhere(sql`${users.status} = 'disabled'`),
          expired: countWhere(sql`${users.status} = 'active' and ${expired}`),
        })
        .from(users)
        .where(sql`${users.role} = 'user' and ${users.deletedAt} is null`);

      const hostRows = await tx
        .select({ status: hosts.status, n: countAll() })
        .from(hosts)
        .groupBy(hosts.status);
      const hostCounts = Object.fromEntries([["total", 0], ...hostStatuses.map((s) => [s, 0])]) as HostCounts;
      for (const r of hostRows) {
        hostCounts[r.status] = r.n;
        hostCounts.total += r.n;
      }

      // A binding is unique per egress IP, so the left join never duplicates a row.
      const bound = sql`${hostEgressBindings.id} is not null`;
      const [e] = await tx
        .select({
          total: countAll(),
          available: countWhere(sql`${egressIps.status} = 'available' and not (${bound})`),
          disabled: countWhere(sql`${egressIps.status} = 'disabled'`),
          bound: countWhere(bound),
          failing: countWhere(sql`${egressIps.health} = 'failing'`),
        })
        .from(egressIps)
        .leftJoin(hostEgressBindings, eq(hostEgressBindings.egressIpId, egressIps.id));

      const [t] = await tx
        .select({
          pending: countWhere(sql`${tasks.status} = 'pending'`),
          running: countWhere(sql`${tasks.status} = 'running'`),
          failed_24h: countWhere(and(eq(tasks.status, "failed"), gt(tasks.finishedAt, dayAgo))),
        })
        .from(tasks)
        // Only these rows can count; the status index keeps this off the (long) terminal history.
        .where(sql`${tasks.status} in ('pending', 'running', 'failed')`);

      // Every engine's pool; a claimed member is already a host and counted there.
      const [p] = await tx
        .select({
          ready: countWhere(sql`${hostPool.state} = 'ready'`),
          warming: countWhere(sql`${hostPool.state} = 'warming'`),
        })
        .from(hostPool);

      // docs/idle.md#dashboard: hosts stopped for idleness, their limits, and the memory each was
      // using when stopped (from its latest host.idle_stopped event). The outer column is spelled
      // out: drizzle leaves a single table's columns unqualified, which the subquery would take
      // for its own.
      const [idle] = await tx
        .select({
          stopped_hosts: countAll(),
          memory_limit_mb: sql<number>`coalesce(sum(${hosts.memoryLimitMb}), 0)`.mapWith(Number),
          cpu_limit: sql<number>`coalesce(sum(${hosts.cpuLimit}), 0)`.mapWith(Number),
          memory_in_use_bytes: sql<number>`coalesce(sum((
            select (e.metadata->>'memory_bytes')::bigint from ${events} e
            where e.host_id = "hosts"."id" and e.type = 'host.idle_stopped'
            order by e.created_at desc limit 1)), 0)`.mapWith(Number),
        })
        .from(hosts)
        .where(sql`${hosts.status} = 'stopped' and ${hosts.idleStoppedAt} is not null`);
      const [idleEvents] = await tx
        .select({
          stops_24h: countWhere(sql`${events.type} = 'host.idle_stopped'`),
          wakes_24h: countWhere(sql`${events.type} = 'host.woken'`),
        })
        .from(events)
        .where(and(sql`${events.type} in ('host.idle_stopped', 'host.woken')`, gt(events.createdAt, dayAgo)));

      const usersOut = { total: u!.total, active: u!.active, disabled: u!.disabled, expired: u!.expired };
      const egressOut = { total: e!.total, available: e!.available, disabled: e!.disabled, bound: e!.bound, failing: e!.failing };
      return {
        active_users: usersOut.active,
        running_hosts: hostCounts.running,
        available_ips: egressOut.available,
        users: usersOut,
        hosts: {
          total: hostCounts.total,
          pending: hostCounts.pending,
          creating: hostCounts.creating,
          starting: hostCounts.starting,
          running: hostCounts.running,
          stopping: hostCounts.stopping,
          stopped: hostCounts.stopped,
          rebuilding: hostCounts.rebuilding,
          failed: hostCounts.failed,
          deleting: hostCounts.deleting,
        },
        egress_ips: egressOut,
        tasks: { pending: t!.pending, running: t!.running, failed_24h: t!.failed_24h },
        pool: { ready: p!.ready, warming: p!.warming },
        idle: {
          stopped_hosts: idle!.stopped_hosts,
          memory_limit_mb: idle!.memory_limit_mb,
          cpu_limit: Math.round(idle!.cpu_limit * 100) / 100,
          memory_in_use_mb: Math.round(idle!.memory_in_use_bytes / (1024 * 1024)),
          stops_24h: idleEvents!.stops_24h,
          wakes_24h: idleEvents!.wakes_24h,
        },
      };
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}
