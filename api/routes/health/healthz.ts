import { z } from "zod";
import { agentState, readHeartbeats, wireguardOf } from "../../../shared/health/heartbeats.js";
import { VERSION } from "../../../shared/version.js";
import type { ApiDeps } from "../../deps.js";
import { defineRoute } from "../../http/route.js";
import { json } from "../../http/reply.js";
import { jsonDoc } from "../docs.js";

const CHECK_TIMEOUT_MS = 2000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error("timeout")), ms).unref()),
  ]);
}

/**
 * Database and Redis checks, each bounded by 2 s (docs/operations.md#health). Constant work per request
 * (issue 10 §2): `select 1` and PING; these routes are public, so their cost must not grow with
 * anything a tenant can create.
 */
async function runBackendChecks(deps: ApiDeps) {
  const [database, redis] = await Promise.all([
    withTimeout(deps.database.sql`select 1`, CHECK_TIMEOUT_MS).then(
      () => "ok" as const,
      () => "error" as const,
    ),
    withTimeout(deps.redis.ping(), CHECK_TIMEOUT_MS).then(
      () => "ok" as const,
      () => "error" as const,
    ),
  ]);
  return { database, redis };
}

/** Backend checks plus the worker agent, read with one bounded Redis command (shared/health/heartbeats.ts). */
export async function runHealthChecks(deps: ApiDeps) {
  const { database, redis } = await runBackendChecks(deps);
  const now = deps.clock();
  const freshness = deps.config.HEARTBEAT_FRESHNESS_SECONDS;
  const beats =
    redis === "ok"
      ? await withTimeout(readHeartbeats(deps.redis, deps.config.REDIS_PREFIX, freshness, now), CHECK_TIMEOUT_MS).catch(() => null)
      : null;
  const agent = beats ? agentState(beats, now, freshness) : ("no_workers" as const);
  return { database, redis, agent, wireguard: beats ? wireguardOf(beats, now, freshness) : ("unknown" as const) };
}

const healthDoc = z.object({
  status: z.enum(["ok", "warning", "degraded"]),
  /** The running release (package.json), so an operator sees which version answers. */
  version: z.string(),
  checks: z.object({ database: z.string(), redis: z.string(), agent: z.string() }),
  /** The WireGuard implementation the workers' gateways use (docs/egress.md#wireguard-implementation). */
  wireguard: z.enum(["kernel", "userspace", "unknown"]),
});

const readyDoc = z.object({
  status: z.enum(["ready", "not_ready"]),
  checks: z.object({ database: z.string(), redis: z.string() }),
});

export const healthzRoute = defineRoute({
  method: "get",
  path: "/healthz",
  access: "public",
  summary: "Health of the control plane",
  tags: ["health"],
  responses: { 200: jsonDoc("Healthy, or a warning about workers", healthDoc), 503: jsonDoc("Degraded", healthDoc) },
  handler: async ({ c, deps }) => {
    const { wireguard, ...checks } = await runHealthChecks(deps);
    if (checks.database !== "ok" || checks.redis !== "ok") return json(c, 503, { status: "degraded", version: VERSION, checks, wireguard });
    return json(c, 200, { status: checks.agent === "ok" ? "ok" : "warning", version: VERSION, checks, wireguard });
  },
});

/** Readiness for load balancers: this replica can serve (database and Redis answer; workers are not read). */
export const readyzRoute = defineRoute({
  method: "get",
  path: "/readyz",
  access: "public",
  summary: "Readiness of this API replica",
  tags: ["health"],
  responses: { 200: jsonDoc("Ready", readyDoc), 503: jsonDoc("Not ready", readyDoc) },
  handler: async ({ c, deps }) => {
    const checks = await runBackendChecks(deps);
    const ready = checks.database === "ok" && checks.redis === "ok";
    return json(c, ready ? 200 : 503, { status: ready ? "ready" : "not_ready", checks: { database: checks.database, redis: checks.redis } });
  },
});
