import { count, isNotNull } from "drizzle-orm";
import { Gauge, Histogram } from "prom-client";
import type { Db } from "../shared/db/client.js";
import { engines, hostEgressBindings, hosts, hostStatuses } from "../shared/db/schema/index.js";
import type { Logger } from "../shared/logger.js";
import { createByteCounter, type ByteCounter, type Registry } from "../shared/metrics/registry.js";
import { hostOpsQueue, QUEUE_NAMES, type QueueName } from "../shared/queue/contracts.js";
import type { Queues } from "../shared/queue/queues.js";

/** BullMQ job states reported by `ccp_queue_jobs` (getJobCounts answers these in one round trip). */
const JOB_STATES = ["waiting", "active", "delayed", "prioritized", "waiting-children", "paused", "failed", "completed"] as const;

export interface ApiMetrics {
  registry: Registry;
  /** `ccp_http_request_duration_seconds{method,route,status}`: observed by the request-context middleware. */
  httpDuration: Histogram<"method" | "route" | "status">;
  /** `ccp_desktop_bytes_total{direction}`: bytes through the desktop (VNC) WebSockets. */
  desktopBytes: ByteCounter;
}

/**
 * The API's series (README "Observability"). Gauges of state that lives elsewhere — hosts by
 * status in Postgres, jobs by state in BullMQ, open desktop sockets in this process — are read when
 * scraped, with one grouped query and one command per queue: nothing is kept in step by hand, so
 * they cannot drift. A backend that does not answer leaves its gauge empty for that scrape (logged)
 * instead of failing the whole scrape.
 */
export function createApiMetrics(
  registry: Registry,
  parts: { db: Db; queues: Queues; logger: Logger; openDesktopSessions: () => number },
): ApiMetrics {
  const httpDuration = new Histogram({
    name: "ccp_http_request_duration_seconds",
    help: "HTTP request duration by method, route template (unmatched paths: 'unmatched') and status",
    labelNames: ["method", "route", "status"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });

  new Gauge({
    name: "ccp_hosts",
    help: "Hosts by status",
    labelNames: ["status"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const rows = await parts.db.select({ status: hosts.status, n: count() }).from(hosts).groupBy(hosts.status);
        // Every status has a series, 0 included, so a status that empties reads 0 rather than vanishing.
        for (const status of hostStatuses) this.set({ status }, 0);
        for (const r of rows) this.set({ status: r.status }, r.n);
      } catch (err) {
        parts.logger.warn({ err: (err as Error).message }, "metrics: hosts by status not available");
      }
    },
  });

  new Gauge({
    name: "ccp_queue_jobs",
    help: "BullMQ jobs by queue and state",
    labelNames: ["queue", "state"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      // Every engine's own host-ops queue (docs/engines.md#queues), from the engines table: a queue
      // backing up on one engine shows there, not summed away.
      const engineIds = await parts.db
        .select({ id: engines.id })
        .from(engines)
        .then((rows) => rows.map((r) => r.id))
        .catch((err: unknown) => {
          parts.logger.warn({ err: (err as Error).message }, "metrics: engines not available");
          return [] as string[];
        });
      const names = new Set<QueueName>([...Object.values(QUEUE_NAMES), ...engineIds.map(hostOpsQueue)]);
      await Promise.all(
        [...names].map(async (queue) => {
          try {
            const counts = await parts.queues.get(queue).getJobCounts(...JOB_STATES);
            for (const state of JOB_STATES) this.set({ queue, state }, counts[state] ?? 0);
          } catch (err) {
            parts.logger.warn({ err: (err as Error).message, queue }, "metrics: queue counts not available");
          }
        }),
      );
    },
  });

  new Gauge({
    name: "ccp_engine_heartbeat_age_seconds",
    help: "Seconds since a worker of each engine last reached its Docker (docs/engines.md#failures); absent for an engine never seen",
    labelNames: ["engine"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const rows = await parts.db.select({ id: engines.id, at: engines.lastSeenAt }).from(engines);
        const now = Date.now();
        for (const r of rows) if (r.at) this.set({ engine: r.id }, Math.max(0, (now - r.at.getTime()) / 1000));
      } catch (err) {
        parts.logger.warn({ err: (err as Error).message }, "metrics: engines not available");
      }
    },
  });

  new Gauge({
    name: "ccp_egress_quarantined_hosts",
    help: "Bound hosts blocked because their last egress attestation failed (docs/egress.md#attestation)",
    registers: [registry],
    async collect() {
      try {
        const [row] = await parts.db.select({ n: count() }).from(hostEgressBindings).where(isNotNull(hostEgressBindings.quarantinedAt));
        this.set(row?.n ?? 0);
      } catch (err) {
        parts.logger.warn({ err: (err as Error).message }, "metrics: quarantined hosts not available");
      }
    },
  });

  new Gauge({
    name: "ccp_desktop_sessions_open",
    help: "Desktop (VNC) WebSockets open in this API process",
    registers: [registry],
    collect() {
      this.set(parts.openDesktopSessions());
    },
  });

  const desktopBytes = createByteCounter(
    registry,
    "ccp_desktop_bytes_total",
    "Bytes proxied through desktop (VNC) WebSockets: in = browser to host, out = host to browser",
  );

  return { registry, httpDuration, desktopBytes };
}
