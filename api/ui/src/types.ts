/**
 * The API's objects as the UI uses them. Where the API has a view schema (shared/views), the type
 * is derived from it, type-only (nothing of zod reaches the bundle): the renderers, /openapi.json
 * and this UI share one definition (README "API reference and response contract").
 */
import type {
  AccessView,
  DashboardView,
  EventView,
  LastTaskView,
  SshKeyView,
  TaskView,
  UserView,
} from "../../../shared/views/index.js";

export type User = UserView;

export type SshKey = SshKeyView;

export type HostStatus =
  | "pending"
  | "creating"
  | "running"
  | "stopping"
  | "stopped"
  | "starting"
  | "rebuilding"
  | "failed"
  | "deleting";

export interface HostEgressSummary {
  id?: string;
  label: string;
  ip_address: string;
  tunnel_type: string;
  status?: string;
  health: string;
}

export interface Host {
  id: string;
  user_id: string;
  username: string;
  short_id: string;
  status: HostStatus;
  desired_state?: string;
  memory_limit_mb: number;
  cpu_limit: number;
  pids_limit: number;
  /** null: the engine's default size (HOST_DISK_LIMIT_MB). */
  disk_limit_mb: number | null;
  timezone: string;
  image?: string | null;
  /** Runs an older host or gateway image than the engine's current one (README "Upgrading"). */
  image_outdated: boolean;
  binding_id?: string | null;
  egress: HostEgressSummary | null;
  created_at: string;
  updated_at: string;
}

export type Access = AccessView;

export type LastTask = LastTaskView;

export interface HostDetail {
  host: Host;
  user: { id: string; username: string };
  egress: EgressIp | HostEgressSummary | null;
  access: Access;
  last_task: LastTask | null;
}

export type TaskStatus = TaskView["status"];

export type TaskStep = TaskView["steps"][number];

export type Task = TaskView;

export type ProxyType = "shadowsocks" | "vmess" | "socks" | "trojan" | "http";

export interface CheckResult {
  status: "pass" | "fail";
  latency_ms?: number | null;
  expected?: string;
  observed?: string | null;
  resolvers_seen?: string[];
  error?: string;
}

export interface EgressTestResult {
  task_id: string;
  status: "passed" | "failed";
  error_code: string | null;
  tested_at: string;
  duration_ms: number;
  results: { connectivity: CheckResult; exit_ip: CheckResult; dns_leak: CheckResult };
}

export interface EgressIp {
  id: string;
  label: string;
  ip_address: string;
  tunnel_type: "wireguard" | "proxy";
  provider: string;
  status: "available" | "disabled";
  health: "unknown" | "passing" | "failing";
  last_test: EgressTestResult | null;
  wg_endpoint?: string;
  wg_public_key?: string;
  wg_preshared_key?: string | null;
  wg_allowed_ips?: string;
  wg_dns_server?: string;
  wg_peer_address?: string;
  wg_private_key?: string | null;
  wg_client_public_key?: string;
  proxy_config?: Record<string, unknown>;
  proxy_dns_server?: string | null;
  udp?: string;
  bound_host_id: string | null;
  binding_id: string | null;
  created_at: string;
  updated_at: string;
}

export type EventRow = EventView;

export type DashboardStats = DashboardView;

export const TASK_KINDS = [
  "host.create",
  "host.start",
  "host.stop",
  "host.rebuild",
  "host.delete",
  "host.ensure-running",
  "host.apply-egress",
  "host.sync-keys",
  "egress.test",
  "system.expiry",
  "system.reconcile",
  "system.sweep",
  "system.retention",
] as const;

export const HOST_STATUSES: HostStatus[] = [
  "pending",
  "creating",
  "running",
  "stopping",
  "stopped",
  "starting",
  "rebuilding",
  "failed",
  "deleting",
];

export const isTerminal = (s: TaskStatus) => s === "succeeded" || s === "failed" || s === "canceled";
