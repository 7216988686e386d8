import { lazy, Suspense } from "react";
import { api } from "../../api";
import { ErrorMessage, Loading, useResource } from "../../components";
import { useLiveReload } from "../../live";
import { Link, usePageTitle } from "../../router";
import type { DashboardStats } from "../../types";

// Chart.js is most of the charts' weight: a chunk of its own, fetched when the dashboard opens
// (same origin, a file like the others: the CSP's script-src 'self' covers it).
const DashboardCharts = lazy(() => import("./DashboardCharts").then((m) => ({ default: m.DashboardCharts })));

function Stat({ label, value, to }: { label: string; value: number; to?: string }) {
  return (
    <div className="stat">
      <div className="stat-value">{value}</div>
      <div className="stat-label">{to ? <Link to={to}>{label}</Link> : label}</div>
    </div>
  );
}

function Breakdown({ title, rows }: { title: string; rows: [string, number, string?][] }) {
  return (
    <section className="card" aria-label={title}>
      <h2>{title}</h2>
      <dl className="breakdown">
        {rows.map(([k, v, to]) => (
          <div key={k}>
            <dt>{to ? <Link to={to}>{k}</Link> : k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

export function DashboardPage() {
  usePageTitle("Dashboard");
  const stats = useResource((signal) => api.get<DashboardStats>("/v1/admin/dashboard/stats", signal), []);
  useLiveReload(stats.reload, () => true, 1000);
  const s = stats.data;
  return (
    <section>
      <h1>Dashboard</h1>
      <ErrorMessage error={stats.error} />
      {!s ? (
        <Loading />
      ) : (
        <>
          <div className="stats" aria-label="Summary">
            <Stat label="Active users" value={s.active_users} to="/admin/users?status=active" />
            <Stat label="Running hosts" value={s.running_hosts} to="/admin/hosts?status=running" />
            <Stat label="Available egress IPs" value={s.available_ips} to="/admin/egress?status=available&bound=false" />
            <Stat label="Tasks running" value={s.tasks.running} to="/admin/tasks?status=running" />
            <Stat label="Tasks failed (24 h)" value={s.tasks.failed_24h} to="/admin/tasks?status=failed" />
          </div>
          <Suspense fallback={<Loading />}>
            <DashboardCharts />
          </Suspense>
          <div className="grid">
            <Breakdown
              title="Users"
              rows={[
                ["total", s.users.total, "/admin/users"],
                ["active", s.users.active, "/admin/users?status=active"],
                ["disabled", s.users.disabled, "/admin/users?status=disabled"],
                ["expired", s.users.expired, "/admin/users?status=expired"],
              ]}
            />
            <Breakdown
              title="Hosts"
              rows={(Object.entries(s.hosts) as [string, number][]).map(
                ([k, v]): [string, number, string] => [k, v, k === "total" ? "/admin/hosts" : `/admin/hosts?status=${k}`],
              )}
            />
            <Breakdown
              title="Egress IPs"
              rows={[
                ["total", s.egress_ips.total, "/admin/egress"],
                ["available", s.egress_ips.available, "/admin/egress?status=available&bound=false"],
                ["bound", s.egress_ips.bound, "/admin/egress?bound=true"],
                ["disabled", s.egress_ips.disabled, "/admin/egress?status=disabled"],
                ["failing", s.egress_ips.failing, "/admin/egress?health=failing"],
              ]}
            />
            <Breakdown
              title="Tasks"
              rows={[
                ["pending", s.tasks.pending, "/admin/tasks?status=pending"],
                ["running", s.tasks.running, "/admin/tasks?status=running"],
                ["failed in the last 24 h", s.tasks.failed_24h, "/admin/tasks?status=failed"],
              ]}
            />
            {/* Pre-created hosts waiting for a create to claim them: not hosts of anyone yet. */}
            <Breakdown
              title="Warm pool"
              rows={[
                ["ready", s.pool.ready],
                ["warming", s.pool.warming],
              ]}
            />
            {/* Hosts the idle scan stopped (docs/idle.md#dashboard) and what they free; they wake on the next login. */}
            <Breakdown
              title="Stopped while idle"
              rows={[
                ["hosts", s.idle.stopped_hosts, "/admin/events?type=host.idle_stopped"],
                ["memory limit freed (MiB)", s.idle.memory_limit_mb],
                ["memory in use when stopped (MiB)", s.idle.memory_in_use_mb],
                ["CPUs freed", s.idle.cpu_limit],
                ["stops in the last 24 h", s.idle.stops_24h, "/admin/events?type=host.idle_stopped"],
                ["wakes in the last 24 h", s.idle.wakes_24h, "/admin/events?type=host.woken"],
              ]}
            />
          </div>
        </>
      )}
    </section>
  );
}
