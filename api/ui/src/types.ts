/**
 * The API's objects as the UI uses them. Where the API has a view schema (shared/views), the type
 * is derived from it, type-only (nothing of zod reaches the bundle): the renderers, /openapi.json
 * and this UI share one definition (README "API reference and response contract").
 */
import type {
  AccessView,
  DashboardView,
  EgressIpView,
  EgressTestResultView,
  EventView,
  HostAdminDetailView,
  HostAdminView,
  HostUserDetailView,
  HostUserView,
  LastTaskView,
  SshKeyView,
  TaskView,
  UserView,
} from "../../../shared/views/index.js";
import type { JobName } from "../../../shared/queue/contracts.js";
import type { SessionView } from "../../../shared/services/sessions/view.js";

export type User = UserView;

export type SshKey = SshKeyView;

/** The host object of the admin API (desired_state, image, binding_id, the egress' id and status). */
export type AdminHost = HostAdminView;

/** The portal's host object: the admin's without those fields. */
export type UserHost = HostUserView;

/**
 * A host as a page shared by both portals (the host detail) holds it. Admin-only fields are read
 * after narrowing (`"desired_state" in host`), never assumed.
 */
export type Host = AdminHost | UserHost;

export type HostStatus = Host["status"];

/** The egress summary inside a host object (the portal's lacks id and status). */
export type HostEgressSummary = NonNullable<Host["egress"]>;

export type Access = AccessView;

export type LastTask = LastTaskView;

/** GET /v1/admin/hosts/{id} (the full egress IP) or /v1/user/hosts/{id} (the portal's summary). */
export type HostDetail = HostAdminDetailView | HostUserDetailView;

export type TaskStatus = TaskView["status"];

export type TaskStep = TaskView["steps"][number];

export type Task = TaskView;

export type EgressIp = EgressIpView;

export type EgressTestResult = EgressTestResultView;

/**
 * The proxy protocols the egress form offers (docs/api.md#egress-validation). The views type
 * `proxy_config` as an open JSON object and the server's list lives in a module that needs
 * node:crypto, so this list cannot be derived in the browser build; `proxyTypeOf` reads a stored
 * config through it instead of trusting `proxy_config.type`.
 */
export const PROXY_TYPES = ["shadowsocks", "vmess", "socks", "trojan", "http"] as const;
export type ProxyType = (typeof PROXY_TYPES)[number];

export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

export function proxyTypeOf(e: EgressIp): ProxyType | undefined {
  if (e.tunnel_type !== "proxy") return undefined;
  const type = e.proxy_config?.type;
  return PROXY_TYPES.find((t) => t === type);
}

/**
 * One entry of an egress test's `results` (docs/api.md#egress-test-api). The view types
 * `results` as an open JSON object (one entry per check, more may come), so an entry is read
 * through `readCheck`, which keeps only the fields of the documented shape.
 */
export interface CheckResult {
  status: "pass" | "fail";
  latency_ms?: number | null;
  expected?: string;
  observed?: string | null;
  resolvers_seen?: string[];
  error?: string;
}

export function readCheck(v: unknown): CheckResult | undefined {
  if (!isRecord(v) || (v.status !== "pass" && v.status !== "fail")) return undefined;
  const str = (x: unknown) => (typeof x === "string" ? x : undefined);
  const strOrNull = (x: unknown) => (x === null ? null : str(x));
  const seen = v.resolvers_seen;
  return {
    status: v.status,
    latency_ms: v.latency_ms === null ? null : typeof v.latency_ms === "number" ? v.latency_ms : undefined,
    expected: str(v.expected),
    observed: strOrNull(v.observed),
    resolvers_seen: Array.isArray(seen) ? seen.filter((s): s is string => typeof s === "string") : undefined,
    error: str(v.error),
  };
}

/** An egress.test task's `result` (an open JSON object in the task view) read as its verdict. */
export function readTestResult(v: unknown): EgressTestResult | undefined {
  if (!isRecord(v) || !isRecord(v.results)) return undefined;
  const { task_id, status, error_code, tested_at, duration_ms, results } = v;
  if (typeof task_id !== "string" || (status !== "passed" && status !== "failed")) return undefined;
  if (typeof tested_at !== "string" || typeof duration_ms !== "number") return undefined;
  if (error_code !== null && typeof error_code !== "string") return undefined;
  return { task_id, status, error_code, tested_at, duration_ms, results };
}

export type EventRow = EventView;

/** A session record (docs/sessions.md): SSH or desktop, with its recording's state. */
export type SessionRow = SessionView;

export type DashboardStats = DashboardView;

/** `true` when A and B are the same type; `Assert<…>` below fails to compile when a list drifts. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;

/**
 * Every job kind, for the task filter. The server's list (shared/queue/contracts) is built from
 * zod contracts, which must not reach the bundle: the list is repeated and checked against its type.
 */
export const TASK_KINDS = [
  "host.create",
  "host.start",
  "host.stop",
  "host.rebuild",
  "host.delete",
  "host.ensure-running",
  "host.apply-egress",
  "host.sync-keys",
  "host.move",
  "egress.test",
  "system.expiry",
  "system.reconcile",
  "system.attest",
  "system.sweep",
  "system.engines",
  "system.retention",
  "system.idle",
  "system.webhook-dispatch",
  "system.webhook-deliver",
] as const;
type TaskKindsMatchServer = Assert<Same<(typeof TASK_KINDS)[number], JobName>>;

/**
 * Every host status, in the server's order, for the status filter. The server's list sits in the
 * drizzle schema (a runtime import would bundle drizzle): repeated and checked against the view.
 */
export const HOST_STATUSES = [
  "pending",
  "creating",
  "running",
  "stopping",
  "stopped",
  "starting",
  "rebuilding",
  "failed",
  "deleting",
  "unreachable",
] as const;
type HostStatusesMatchView = Assert<Same<(typeof HOST_STATUSES)[number], HostStatus>>;

export const isTerminal = (s: TaskStatus) => s === "succeeded" || s === "failed" || s === "canceled";
