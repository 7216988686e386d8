import { z } from "zod";
import { egressHealths, egressStatuses, tunnelTypes } from "../db/schema/egress-ips.js";
import { hostDesiredStates, hostStatuses } from "../db/schema/hosts.js";
import { recordingModes } from "../db/schema/sessions.js";
import { taskStatuses } from "../db/schema/tasks.js";

/**
 * One zod schema per object the API returns (README "API reference and response contract").
 * The renderers in shared/services/* return `z.output<typeof …View>`, the routes document their
 * responses with these schemas (so /openapi.json and /docs describe exactly this), the
 * integration harness validates every response against them, and the UI imports the types
 * (type-only). Change a field here and every one of those follows.
 */

const uuid = z.string().uuid();
/** ISO-8601 timestamps, as `Date.toISOString()` writes them. */
const timestamp = z.string();
const json = z.record(z.string(), z.unknown());

export const userView = z.object({
  id: uuid,
  username: z.string(),
  role: z.enum(["admin", "user"]),
  status: z.enum(["active", "disabled"]),
  expires_at: timestamp.nullable(),
  expired: z.boolean(),
  /** SSH session recording for this user's host; null = SESSION_RECORDING (docs/sessions.md#recording). */
  session_recording: z.enum(recordingModes).nullable(),
  /** Idle policy (docs/idle.md#policy): minutes idle before a stop (0 = never), null = IDLE_STOP_MINUTES. */
  idle_stop_minutes: z.number().int().nullable(),
  /** CPU percent under which the host counts as idle; null = IDLE_CPU_PERCENT. */
  idle_cpu_percent: z.number().int().nullable(),
  created_at: timestamp,
  updated_at: timestamp,
});
export type UserView = z.output<typeof userView>;

export const sshKeyView = z.object({
  id: uuid,
  user_id: uuid,
  label: z.string(),
  key_type: z.enum(["ed25519", "ecdsa", "rsa"]),
  fingerprint: z.string(),
  public_key: z.string(),
  created_at: timestamp,
});
export type SshKeyView = z.output<typeof sshKeyView>;

export const taskStepView = z.object({
  name: z.string(),
  status: z.enum(["pending", "running", "succeeded", "failed", "skipped"]),
  started_at: timestamp.nullable(),
  duration_ms: z.number().int().nullable(),
});

/** The task object of docs/api.md#task-object. The payload, origin and heartbeat stay internal. */
export const taskView = z.object({
  id: uuid,
  kind: z.string(),
  status: z.enum(taskStatuses),
  host_id: uuid.nullable(),
  egress_ip_id: uuid.nullable(),
  /** A user id, or `system:<reason>`. */
  requested_by: z.string(),
  /** The X-Request-Id of the request that created the task (null for system tasks). */
  request_id: z.string().nullable(),
  attempt: z.number().int(),
  progress_percent: z.number().int(),
  progress_message: z.string().nullable(),
  error_code: z.string().nullable(),
  error_message: z.string().nullable(),
  cancel_requested: z.boolean(),
  /** Kind-specific (an egress.test stores its verdict here). */
  result: json.nullable(),
  created_at: timestamp,
  started_at: timestamp.nullable(),
  finished_at: timestamp.nullable(),
  steps: z.array(taskStepView),
});
export type TaskView = z.output<typeof taskView>;

/** The short task summary a host detail carries. */
export const lastTaskView = z.object({
  id: uuid,
  kind: z.string(),
  status: z.enum(taskStatuses),
  progress_percent: z.number().int(),
  progress_message: z.string().nullable(),
  error_code: z.string().nullable(),
  error_message: z.string().nullable(),
  created_at: timestamp,
  finished_at: timestamp.nullable(),
});
export type LastTaskView = z.output<typeof lastTaskView>;

/** The verdict of an egress test (docs/api.md#egress-test-api): also `last_test` and the task's result. */
export const egressTestResultView = z.object({
  task_id: uuid,
  status: z.enum(["passed", "failed"]),
  error_code: z.string().nullable(),
  tested_at: timestamp,
  duration_ms: z.number(),
  /** One entry per check (connectivity, exit IP, DNS leak, …). */
  results: json,
});
export type EgressTestResultView = z.output<typeof egressTestResultView>;

const egressCommon = {
  id: uuid,
  label: z.string(),
  ip_address: z.string(),
  provider: z.string(),
  status: z.enum(egressStatuses),
  health: z.enum(egressHealths),
  last_test: egressTestResultView.nullable(),
  bound_host_id: uuid.nullable(),
  binding_id: uuid.nullable(),
  created_at: timestamp,
  updated_at: timestamp,
};

/** The egress IP object of docs/api.md#egress-ips: secret values are always `"***"`. */
export const egressIpView = z.discriminatedUnion("tunnel_type", [
  z.object({
    ...egressCommon,
    tunnel_type: z.literal("wireguard"),
    wg_endpoint: z.string().nullable(),
    wg_public_key: z.string().nullable(),
    wg_preshared_key: z.literal("***").nullable(),
    wg_allowed_ips: z.string().nullable(),
    wg_dns_server: z.string().nullable(),
    wg_peer_address: z.string().nullable(),
    wg_private_key: z.literal("***").nullable(),
    wg_client_public_key: z.string().nullable(),
  }),
  z.object({
    ...egressCommon,
    tunnel_type: z.literal("proxy"),
    /** The sing-box outbound, every secret value replaced by `"***"`. */
    proxy_config: json.nullable(),
    proxy_dns_server: z.string().nullable(),
    udp: z.enum(["blocked", "proxied"]),
  }),
]);
export type EgressIpView = z.output<typeof egressIpView>;

export const bindingView = z.object({
  id: uuid,
  host_id: uuid,
  egress_ip_id: uuid,
  created_at: timestamp,
});
export type BindingView = z.output<typeof bindingView>;

/** The egress summary inside an admin host object. */
export const hostEgressAdminView = z.object({
  id: uuid,
  label: z.string(),
  ip_address: z.string(),
  tunnel_type: z.enum(tunnelTypes),
  status: z.enum(egressStatuses),
  health: z.enum(egressHealths),
});

/** The egress summary a user sees: no id, no status. */
export const hostEgressUserView = hostEgressAdminView.omit({ id: true, status: true });

const hostCommon = {
  id: uuid,
  user_id: uuid,
  username: z.string(),
  short_id: z.string(),
  status: z.enum(hostStatuses),
  memory_limit_mb: z.number().int(),
  cpu_limit: z.number(),
  pids_limit: z.number().int(),
  /** null: the engine's HOST_DISK_LIMIT_MB (or an uncapped home created before the cap existed). */
  disk_limit_mb: z.number().int().nullable(),
  timezone: z.string(),
  /** The host runs an older host or gateway image than its engine's current one (README "Upgrading"). */
  image_outdated: z.boolean(),
  created_at: timestamp,
  updated_at: timestamp,
};

/** The admin host object of docs/api.md#hosts. */
export const hostAdminView = z.object({
  ...hostCommon,
  desired_state: z.enum(hostDesiredStates),
  image: z.string().nullable(),
  /** The engine placement put the host on (docs/api.md#engines). */
  engine_id: z.string(),
  binding_id: uuid.nullable(),
  egress: hostEgressAdminView.nullable(),
  /** SSH session recording for this host; null = the owner's, then SESSION_RECORDING (docs/sessions.md#recording). */
  session_recording: z.enum(recordingModes).nullable(),
  /** Idle policy (docs/idle.md#policy): null = the owner's, then the global default. */
  idle_stop_minutes: z.number().int().nullable(),
  idle_cpu_percent: z.number().int().nullable(),
  /** Never stopped for idleness. */
  always_on: z.boolean(),
  /** The last time the idle scan saw a session or CPU above the threshold, or the host started. */
  last_active_at: timestamp.nullable(),
  /** Set while the host is stopped for idleness (a login, script or desktop then wakes it). */
  idle_stopped_at: timestamp.nullable(),
});
export type HostAdminView = z.output<typeof hostAdminView>;

/** The portal's host object: no desired_state, image, engine_id, binding_id, egress.id or egress.status. */
export const hostUserView = z.object({ ...hostCommon, egress: hostEgressUserView.nullable() });
export type HostUserView = z.output<typeof hostUserView>;

/** How to reach a host: built from configuration only. */
export const accessView = z.object({
  short_id: z.string(),
  entry_command: z.string(),
  bootstrap_command: z.string(),
  ssh_command: z.string(),
  ssh_host_key: z.string().nullable(),
  vnc_path: z.string(),
});
export type AccessView = z.output<typeof accessView>;

const detailCommon = {
  user: z.object({ id: uuid, username: z.string() }),
  access: accessView,
  last_task: lastTaskView.nullable(),
};

/** GET /v1/admin/hosts/{hostID}. */
export const hostAdminDetailView = z.object({ host: hostAdminView, ...detailCommon, egress: egressIpView.nullable() });
export type HostAdminDetailView = z.output<typeof hostAdminDetailView>;

/** GET /v1/user/hosts/{hostID}. */
export const hostUserDetailView = z.object({ host: hostUserView, ...detailCommon, egress: hostEgressUserView.nullable() });
export type HostUserDetailView = z.output<typeof hostUserDetailView>;

/** GET /v1/admin/users/{userID}. */
export const userDetailView = z.object({ user: userView, hosts: z.array(hostAdminView) });
export type UserDetailView = z.output<typeof userDetailView>;

/** The event object of docs/api.md#events. */
export const eventView = z.object({
  id: uuid,
  type: z.string(),
  level: z.enum(["info", "warn", "error"]),
  message: z.string(),
  actor_id: uuid.nullable(),
  user_id: uuid.nullable(),
  host_id: uuid.nullable(),
  task_id: uuid.nullable(),
  metadata: json,
  created_at: timestamp,
});
export type EventView = z.output<typeof eventView>;

/** The attestation object of docs/api.md#attestations. */
export const attestationView = z.object({
  id: uuid,
  host_id: uuid,
  user_id: uuid,
  egress_ip_id: uuid,
  engine_id: z.string(),
  attested_at: timestamp,
  verdict: z.enum(["passed", "failed"]),
  error_code: z.string().nullable(),
  expected_ip: z.string(),
  observed_ip: z.string().nullable(),
  dns_sources: z.array(z.string()),
  latency_ms: z.number().int().nullable(),
  duration_ms: z.number().int(),
  action: z.enum(["none", "blocked", "recovered"]),
  checks: json,
});
export type AttestationView = z.output<typeof attestationView>;

const count = () => z.number().int();
/** The dashboard object of docs/api.md#dashboard. */
export const dashboardView = z.object({
  active_users: count(),
  running_hosts: count(),
  available_ips: count(),
  users: z.object({ total: count(), active: count(), disabled: count(), expired: count() }),
  hosts: z.object({
    total: count(),
    pending: count(),
    creating: count(),
    starting: count(),
    running: count(),
    stopping: count(),
    stopped: count(),
    rebuilding: count(),
    failed: count(),
    deleting: count(),
  }),
  egress_ips: z.object({ total: count(), available: count(), disabled: count(), bound: count(), failing: count() }),
  tasks: z.object({ pending: count(), running: count(), failed_24h: count() }),
  /** The warm pool (docs/architecture.md#warm-pool): members are not hosts and count only here. */
  pool: z.object({ ready: count(), warming: count() }),
  /**
   * Hosts stopped for idleness (docs/idle.md#dashboard) and what they free: their memory and CPU
   * limits, and the memory they were using when stopped; stops and wakes over the last 24 hours.
   */
  idle: z.object({
    stopped_hosts: count(),
    memory_limit_mb: count(),
    cpu_limit: z.number(),
    memory_in_use_mb: count(),
    stops_24h: count(),
    wakes_24h: count(),
  }),
});
export type DashboardView = z.output<typeof dashboardView>;

/** Server-Sent Events payloads (README "Web UI", live updates): `host` for an admin stream. */
export const liveHostAdminView = z.object({
  id: uuid,
  user_id: uuid,
  short_id: z.string(),
  status: z.enum(hostStatuses),
  desired_state: z.enum(hostDesiredStates),
  updated_at: timestamp,
});
export type LiveHostAdminView = z.output<typeof liveHostAdminView>;

/** `host` on a user's stream: no owner, no desired_state. */
export const liveHostUserView = liveHostAdminView.omit({ user_id: true, desired_state: true });
export type LiveHostUserView = z.output<typeof liveHostUserView>;

/** `task` on a user's stream: the task without who requested it, its egress or its result. */
export const liveTaskUserView = taskView.omit({
  requested_by: true,
  request_id: true,
  egress_ip_id: true,
  result: true,
  cancel_requested: true,
});
export type LiveTaskUserView = z.output<typeof liveTaskUserView>;

/** `host_removed` on either stream. */
export const liveHostRemovedView = z.object({ id: uuid });

/** The 4xx/5xx envelope (docs/api.md#errors). */
export const errorView = z.object({
  error: z.string(),
  code: z.string(),
  details: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  /** Seconds to wait (429, some 503). */
  retry_after: z.number().optional(),
  /** The id to quote to an operator (500). */
  request_id: z.string().optional(),
  /** The shell-script routes (/v1/bootstrap/*, /entry/*) repeat the code and message for bash. */
  error_code: z.string().optional(),
  message: z.string().optional(),
  /** The code of the failed task behind a bootstrap or entry error. */
  task_error_code: z.string().nullable().optional(),
});
export type ErrorView = z.output<typeof errorView>;
