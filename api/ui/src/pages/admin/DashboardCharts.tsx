import {
  type ActiveElement,
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  type ChartConfiguration,
  type ChartEvent,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";
import { type ReactNode, useEffect, useRef } from "react";
import type { ChartWindow, DashboardChartsView } from "../../../../../shared/views/dashboard-charts.js";
import { api, qs } from "../../api";
import { Badge, ErrorMessage, Loading, useResource } from "../../components";
import { type LiveMessage, useLive } from "../../live";
import { Link, navigate, setQuery, useLocation } from "../../router";
import "./charts.css";

/**
 * The dashboard's charts (README "Web UI", data from docs/api.md#dashboard-charts): Chart.js, bundled by Vite, drawing on canvas.
 * It needs no eval and injects no <style> element; the sizes it sets on the canvas go through
 * the CSSOM (`element.style.x = …`), which `style-src 'self'` allows (only style attributes in
 * markup and <style> elements are refused). Only the pieces used are registered (tree-shaken).
 */
Chart.register(BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, Tooltip, Legend);

const WINDOWS: ChartWindow[] = ["24h", "7d", "30d"];
/** Live events reload the charts at most this often (a busy fleet sends many task events). */
const LIVE_THROTTLE_MS = 5000;
/** Sessions and attestations have no live event: refresh them on this period while the page is open. */
const REFRESH_MS = 60_000;

const COLORS = {
  succeeded: "#1e7a3c",
  failed: "#b42318",
  canceled: "#8592a3",
  p50: "#1f4e8c",
  p95: "#8a5a00",
  ssh: "#1f4e8c",
  desktop: "#6b4fbb",
  hosts: "#1f4e8c",
  free: "#d5dbe3",
  ready: "#1e7a3c",
  warming: "#c58a00",
  claimed: "#1f4e8c",
  draining: "#8592a3",
  passed: "#1e7a3c",
};

const HOST_STATUS_COLORS: Record<string, string> = {
  running: "#1e7a3c",
  stopped: "#8592a3",
  failed: "#b42318",
  unreachable: "#7a1f1f",
  deleting: "#5b6675",
};

/** Reload at most once per `ms` (leading and trailing): a debounce would starve under a steady stream of events. */
function useThrottled(fn: () => void, ms: number): () => void {
  const last = useRef(0);
  const timer = useRef<number | undefined>(undefined);
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => () => window.clearTimeout(timer.current), []);
  return useRef(() => {
    if (timer.current !== undefined) return;
    const wait = Math.max(0, last.current + ms - Date.now());
    timer.current = window.setTimeout(() => {
      timer.current = undefined;
      last.current = Date.now();
      ref.current();
    }, wait);
  }).current;
}

/** A task or host event that changes what the charts show. */
export function chartsRelevant(m: LiveMessage): boolean {
  if (m.type === "task") return m.data.status === "succeeded" || m.data.status === "failed" || m.data.status === "canceled";
  return m.type === "host" || m.type === "host_removed";
}

/** Bucket labels: the hour (24 h) or the day, in the browser's time zone. */
function bucketLabels(d: DashboardChartsView): string[] {
  const fmt =
    d.bucket === "hour"
      ? new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" })
      : new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  return d.buckets.map((b) => fmt.format(new Date(b)));
}

/** [start, end) of bucket i, for the events list's since/until filters. */
function bucketRange(d: DashboardChartsView, i: number): { since: string; until: string } {
  return { since: d.buckets[i]!, until: d.buckets[i + 1] ?? d.until };
}

interface ChartProps {
  name: string;
  label: string;
  config: ChartConfiguration<"bar">;
  /** Where a click on element `index` of dataset `dataset` leads (the filtered list behind it). */
  hrefFor?: (dataset: number, index: number) => string | undefined;
  tall?: boolean;
}

/**
 * One Chart.js canvas. Created once, then updated in place when the data changes (no flicker,
 * no lost tooltip). `data-rendered` counts the draws: the browser test waits on it.
 */
function ChartCanvas({ name, label, config, hrefFor, tall }: ChartProps) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart<"bar"> | null>(null);
  const href = useRef(hrefFor);
  href.current = hrefFor;

  useEffect(() => {
    const el = canvas.current;
    if (!el) return;
    let draws = 0;
    const c = new Chart<"bar">(el, {
      ...config,
      options: {
        ...config.options,
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        onClick: (_e: ChartEvent, elements: ActiveElement[]) => {
          const first = elements[0];
          const to = first ? href.current?.(first.datasetIndex, first.index) : undefined;
          if (to) navigate(to);
        },
        onHover: (e: ChartEvent, elements: ActiveElement[]) => {
          const target = e.native?.target as HTMLCanvasElement | undefined;
          if (target) target.classList.toggle("clickable", elements.length > 0 && !!href.current);
        },
      },
      plugins: [
        {
          id: "rendered-marker",
          afterRender: () => {
            draws++;
            el.dataset.rendered = String(draws);
          },
        },
      ],
    } as unknown as ChartConfiguration<"bar">);
    chart.current = c;
    return () => {
      c.destroy();
      chart.current = null;
    };
    // Created once; data changes go through the effect below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    c.data = config.data;
    if (config.options?.scales && c.options) c.options.scales = config.options.scales as never;
    c.update("none");
  }, [config]);

  return (
    <div className={tall ? "chart-box tall" : "chart-box"}>
      <canvas ref={canvas} data-chart={name} role="img" aria-label={label} />
    </div>
  );
}

function ChartCard({ title, to, linkLabel, children }: { title: string; to: string; linkLabel: string; children: ReactNode }) {
  return (
    <section className="card chart-card" aria-label={title}>
      <div className="chart-head">
        <h2>{title}</h2>
        <Link to={to} className="chart-link">
          {linkLabel}
        </Link>
      </div>
      {children}
    </section>
  );
}

const seconds = (ms: number | null) => (ms === null ? null : ms / 1000);
const fmtMs = (ms: number | null) => (ms === null ? "—" : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const stacked = { x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true } }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } as const;
const stackedH = { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } } as const;

export function DashboardCharts() {
  const { query } = useLocation();
  const win = (WINDOWS as string[]).includes(query.get("window") ?? "") ? (query.get("window") as ChartWindow) : "24h";
  const res = useResource((signal) => api.get<DashboardChartsView>(`/v1/admin/dashboard/charts${qs({ window: win })}`, signal), [win]);
  const reload = useThrottled(res.reload, LIVE_THROTTLE_MS);
  useLive((m) => {
    if (m.type === "resync" || chartsRelevant(m)) reload();
  });
  useEffect(() => {
    const t = window.setInterval(reload, REFRESH_MS);
    return () => window.clearInterval(t);
  }, [reload]);

  const d = res.data;
  const per = d?.bucket === "day" ? "day" : "hour";
  return (
    <section aria-label="Charts" className="charts">
      <div className="chart-toolbar">
        <h2>Over time</h2>
        <div className="segmented" role="group" aria-label="Time window">
          {WINDOWS.map((w) => (
            <button key={w} type="button" className={w === win ? "small active" : "small"} aria-pressed={w === win} onClick={() => setQuery({ window: w === "24h" ? undefined : w }, { replace: true })}>
              {w}
            </button>
          ))}
        </div>
      </div>
      <ErrorMessage error={res.error} />
      {!d ? <Loading /> : <Charts d={d} per={per} />}
    </section>
  );
}

function Charts({ d, per }: { d: DashboardChartsView; per: string }) {
  const labels = bucketLabels(d);
  const b = d.tasks.by_bucket;
  const outcomes = ["succeeded", "failed", "canceled"] as const;
  const statuses = Object.keys(d.hosts.by_status) as (keyof DashboardChartsView["hosts"]["by_status"])[];
  const engineIds = d.engines.map((e) => e.id);
  const att = d.attestations;

  return (
    <div className="chart-grid">
      <ChartCard title={`Tasks ended per ${per}`} to="/admin/tasks" linkLabel="All tasks">
        <ChartCanvas
          name="tasks"
          label={`Tasks ended per ${per} by outcome, with p50 and p95 run time: ${outcomes.map((o) => `${sum(b.map((x) => x[o]))} ${o}`).join(", ")}`}
          hrefFor={(ds) => (ds < 3 ? `/admin/tasks?status=${outcomes[ds]}` : undefined)}
          config={{
            type: "bar",
            data: {
              labels,
              datasets: [
                ...outcomes.map((o) => ({ type: "bar" as const, label: o, data: b.map((x) => x[o]), backgroundColor: COLORS[o], stack: "tasks", yAxisID: "y" })),
                { type: "line" as const, label: "p50 run time (s)", data: b.map((x) => seconds(x.p50_ms)), borderColor: COLORS.p50, backgroundColor: COLORS.p50, yAxisID: "y1", spanGaps: true, pointRadius: 2 },
                { type: "line" as const, label: "p95 run time (s)", data: b.map((x) => seconds(x.p95_ms)), borderColor: COLORS.p95, backgroundColor: COLORS.p95, yAxisID: "y1", spanGaps: true, pointRadius: 2 },
              ] as never,
            },
            options: {
              scales: {
                x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true } },
                y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "tasks" } },
                y1: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "seconds" } },
              },
              plugins: { legend: { labels: { boxWidth: 12 } } },
            },
          }}
        />
        <p className="chart-links">
          {outcomes.map((o) => (
            <Link key={o} to={`/admin/tasks?status=${o}`}>
              {o}: {sum(b.map((x) => x[o]))}
            </Link>
          ))}
        </p>
      </ChartCard>

      <ChartCard title="Tasks by kind" to="/admin/tasks" linkLabel="All tasks">
        {d.tasks.by_kind.length === 0 ? (
          <p className="muted">No task ended in this window.</p>
        ) : (
          <>
            <ChartCanvas
              name="task-kinds"
              label={`Tasks by kind and outcome: ${d.tasks.by_kind.map((k) => `${k.kind} ${k.succeeded + k.failed + k.canceled}`).join(", ")}`}
              hrefFor={(ds, i) => {
                const k = d.tasks.by_kind[i];
                return k ? `/admin/tasks?kind=${encodeURIComponent(k.kind)}&status=${outcomes[ds]}` : undefined;
              }}
              tall={d.tasks.by_kind.length > 5}
              config={{
                type: "bar",
                data: {
                  labels: d.tasks.by_kind.map((k) => k.kind),
                  datasets: outcomes.map((o) => ({ label: o, data: d.tasks.by_kind.map((k) => k[o]), backgroundColor: COLORS[o] })),
                },
                options: { indexAxis: "y", scales: stackedH, plugins: { legend: { labels: { boxWidth: 12 } } } },
              }}
            />
            <div className="table-wrap">
              <table className="compact">
                <caption className="visually-hidden">Run time by kind</caption>
                <thead>
                  <tr>
                    <th scope="col">Kind</th>
                    <th scope="col">Ended</th>
                    <th scope="col">p50</th>
                    <th scope="col">p95</th>
                  </tr>
                </thead>
                <tbody>
                  {d.tasks.by_kind.map((k) => (
                    <tr key={k.kind}>
                      <td>
                        <Link to={`/admin/tasks?kind=${encodeURIComponent(k.kind)}`} className="mono">
                          {k.kind}
                        </Link>
                      </td>
                      <td>{k.succeeded + k.failed + k.canceled}</td>
                      <td>{fmtMs(k.p50_ms)}</td>
                      <td>{fmtMs(k.p95_ms)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
      </ChartCard>

      <ChartCard title="Hosts by status (now)" to="/admin/hosts" linkLabel="All hosts">
        <ChartCanvas
          name="hosts"
          label={`Hosts by status: ${statuses.map((s) => `${d.hosts.by_status[s]} ${s}`).join(", ")}`}
          hrefFor={(_ds, i) => `/admin/hosts?status=${statuses[i]}`}
          tall
          config={{
            type: "bar",
            data: {
              labels: statuses,
              datasets: [{ label: "hosts", data: statuses.map((s) => d.hosts.by_status[s]), backgroundColor: statuses.map((s) => HOST_STATUS_COLORS[s] ?? COLORS.hosts) }],
            },
            options: { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } }, plugins: { legend: { display: false } } },
          }}
        />
        {/* The bars are not focusable: the same filters as links, for the keyboard and screen readers. */}
        <p className="chart-links">
          {statuses
            .filter((st) => d.hosts.by_status[st] > 0)
            .map((st) => (
              <Link key={st} to={`/admin/hosts?status=${st}`}>
                {st}: {d.hosts.by_status[st]}
              </Link>
            ))}
        </p>
      </ChartCard>

      <ChartCard title={`Sessions per ${per}`} to={`/admin/events?${new URLSearchParams({ type: "ssh.session.opened", since: d.since, until: d.until })}`} linkLabel="Session events">
        <ChartCanvas
          name="sessions"
          label={`SSH and desktop sessions started per ${per}: ${sum(d.sessions.by_bucket.map((x) => x.ssh))} SSH, ${sum(d.sessions.by_bucket.map((x) => x.desktop))} desktop`}
          hrefFor={(ds, i) => `/admin/events?${new URLSearchParams({ type: ds === 0 ? "ssh.session.opened" : "vnc.session.opened", ...bucketRange(d, i) })}`}
          config={{
            type: "bar",
            data: {
              labels,
              datasets: [
                { label: "SSH", data: d.sessions.by_bucket.map((x) => x.ssh), backgroundColor: COLORS.ssh },
                { label: "desktop", data: d.sessions.by_bucket.map((x) => x.desktop), backgroundColor: COLORS.desktop },
              ],
            },
            options: { scales: stacked, plugins: { legend: { labels: { boxWidth: 12 } } } },
          }}
        />
      </ChartCard>

      <ChartCard title="Engines: hosts vs capacity" to="/admin/engines" linkLabel="Engines">
        {d.engines.length === 0 ? (
          <p className="muted">No engine registered yet.</p>
        ) : (
          <ChartCanvas
            name="engines"
            label={`Hosts per engine against max_hosts: ${d.engines.map((e) => `${e.id} ${e.hosts} of ${e.max_hosts ?? "unlimited"}`).join(", ")}`}
            hrefFor={(_ds, i) => `/admin/engines?state=${d.engines[i]?.state ?? ""}`}
            config={{
              type: "bar",
              data: {
                labels: engineIds,
                datasets: [
                  { label: "hosts", data: d.engines.map((e) => e.hosts), backgroundColor: COLORS.hosts },
                  { label: "free (max_hosts)", data: d.engines.map((e) => (e.max_hosts === null ? 0 : Math.max(0, e.max_hosts - e.hosts))), backgroundColor: COLORS.free },
                ],
              },
              options: { indexAxis: "y", scales: stackedH, plugins: { legend: { labels: { boxWidth: 12 } } } },
            }}
          />
        )}
      </ChartCard>

      <ChartCard title="Warm pool by engine" to="/admin/engines" linkLabel="Engines">
        {d.engines.length === 0 ? (
          <p className="muted">No engine registered yet.</p>
        ) : (
          <ChartCanvas
            name="pool"
            label={`Warm pool members per engine: ${d.engines.map((e) => `${e.id} ${e.pool.ready} ready, ${e.pool.warming} warming`).join("; ")}`}
            hrefFor={(_ds, i) => `/admin/engines?state=${d.engines[i]?.state ?? ""}`}
            config={{
              type: "bar",
              data: {
                labels: engineIds,
                datasets: (["ready", "warming", "claimed", "draining"] as const).map((s) => ({ label: s, data: d.engines.map((e) => e.pool[s]), backgroundColor: COLORS[s] })),
              },
              options: { indexAxis: "y", scales: stackedH, plugins: { legend: { labels: { boxWidth: 12 } } } },
            }}
          />
        )}
      </ChartCard>

      <ChartCard title="Egress attestations" to="/admin/egress?health=failing" linkLabel="Failing egress IPs">
        {att.length === 0 ? (
          <p className="muted">No attestation in this window.</p>
        ) : (
          <>
            <ChartCanvas
              name="attestations"
              label={`Attestations per egress IP: ${att.map((a) => `${a.label ?? a.egress_ip_id} ${a.passed} passed, ${a.failed} failed`).join("; ")}`}
              hrefFor={(ds) => `/admin/events?${new URLSearchParams({ type: ds === 1 ? "egress.attestation.failed" : "egress.attestation.*", since: d.since, until: d.until })}`}
              tall={att.length > 5}
              config={{
                type: "bar",
                data: {
                  labels: att.map((a) => a.label ?? `${a.egress_ip_id.slice(0, 8)} (deleted)`),
                  datasets: [
                    { label: "passed", data: att.map((a) => a.passed), backgroundColor: COLORS.passed },
                    { label: "failed", data: att.map((a) => a.failed), backgroundColor: COLORS.failed },
                  ],
                },
                options: { indexAxis: "y", scales: stackedH, plugins: { legend: { labels: { boxWidth: 12 } } } },
              }}
            />
            <ul className="plain attest-list">
              {att.map((a) => (
                <li key={a.egress_ip_id}>
                  <span>{a.label ?? <span className="muted">deleted egress</span>}</span> <Badge value={a.latest_verdict} label="Latest verdict" />
                  {a.latest_error_code ? <span className="mono muted"> {a.latest_error_code}</span> : null}
                </li>
              ))}
            </ul>
          </>
        )}
      </ChartCard>
    </div>
  );
}
