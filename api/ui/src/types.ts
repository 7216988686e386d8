/** The API's objects as the UI uses them (docs/api.md#users, docs/architecture.md#tasks). */

export interface User {
  id: string;
  username: string;
  role: "admin" | "user";
  status: "active" | "disabled";
  expires_at: string | null;
  expired: boolean;
  created_at: string;
  updated_at: string;
}

export interface SshKey {
  id: string;
  user_id: string;
  label: string;
  key_type: string;
  fingerprint: string;
  public_key: string;
  created_at: string;
}

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

export interface Access {
  short_id: string;
  entry_command: string;
  bootstrap_command: string;
  ssh_command: string;
  ssh_host_key: string | null;
  vnc_path: string;
}

export interface LastTask {
  id: string;
  kind: string;
  status: TaskStatus;
  progress_percent: number;
  progress_message: string | null;
  error_code: string | null;
  error_message: string | null;
  created_at: string;
  finished_at: string | null;
}

export interface HostDetail {
  host: Host;
  user: { id: string; username: string };
  egress: EgressIp | HostEgressSummary | null;
  access: Access;
  last_task: LastTask | null;
}

export type TaskStatus = "pending" | "running" | "succeeded" | "failed" | "canceled";

export interface TaskStep {
  name: string;
  status: "pending" | "running" | "succeeded" | "failed" | "skipped";
  started_at: string | null;
  duration_ms: number | null;
}

export interface Task {
  id: string;
  kind: string;
  status: TaskStatus;
  host_id: string | null;
  egress_ip_id?: string | null;
  requested_by?: string;
  request_id?: string | null;
  attempt: number;
  progress_percent: number;
  progress_message: string | null;
  error_code: string | null;
  error_message: string | null;
  cancel_requested?: boolean;
  result?: unknown;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  steps?: TaskStep[];
}

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

export interface EventRow {
  id: string;
  type: string;
  level: "info" | "warn" | "error";
  message: string;
  actor_id: string | null;
  user_id: string | null;
  host_id: string | null;
  task_id: string | null;
  metadata: Record<string, unknown>;
  created_at: string;
}

export interface DashboardStats {
  active_users: number;
  running_hosts: number;
  available_ips: number;
  users: { total: number; active: number; disabled: number; expired: number };
  hosts: Record<HostStatus | "total", number>;
  egress_ips: { total: number; available: number; disabled: number; bound: number; failing: number };
  tasks: { pending: number; running: number; failed_24h: number };
}

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
