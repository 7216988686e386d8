import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { z } from "zod";
import { commonConfigShape } from "./common.js";
import { boolVar, cidrListVar, intVar, ipv4Var, isNotPlaceholder, optionalListenAddrVar, PLACEHOLDER_MESSAGE, urlVar } from "./fields.js";
import { ConfigError, parseConfig } from "./parse.js";

export const workerConfigSchema = z.object({
  ...commonConfigShape,
  EGRESS_REQUIRED: boolVar(false),
  HOST_SSH_USER: z.string().default("workspace").refine((v) => /^[a-z_][a-z0-9_-]{0,31}$/.test(v), "must be a valid user name"),
  DOCKER_SOCKET: z.string().default("/var/run/docker.sock"),
  ENGINE_ID: z.string().default("default").refine((v) => /^[a-z0-9][a-z0-9_-]{0,62}$/.test(v), "must be a short lowercase id"),
  WORKER_ID: z.string().optional(),
  WORKER_CONCURRENCY: intVar(4, 1, 64),
  HOST_IMAGE: z.string().default("cloud-cli-proxy/host:latest"),
  GATEWAY_IMAGE: z.string().default("cloud-cli-proxy/gateway:latest"),
  MGMT_NETWORK: z.string().default("ccp-mgmt"),
  MGMT_SUBNET: z.string().optional(),
  EGRESS_UNDERLAY_NETWORK: z.string().default("ccp-underlay"),
  EGRESS_UNBOUND_POLICY: z.enum(["block", "direct"]).default("block"),
  // No defaults, so that no default ever points at a public service. The resolver of direct-mode
  // hosts and of proxy egresses without their own: required with EGRESS_UNBOUND_POLICY=direct or
  // with the egress checks below.
  EGRESS_DEFAULT_DNS_SERVER: ipv4Var().optional(),
  // The egress checks (README "Deploying the egress check service (checkd)"): all of them or none
  // (EGRESS_CHECK_VARIABLES). Without them the worker runs hosts without an egress; testing an
  // egress or binding one answers 409 egress_checks_not_configured.
  EGRESS_CHECK_URL: urlVar().optional(),
  EGRESS_ECHO_URL: urlVar().optional(),
  EGRESS_DNS_CANARY_DOMAIN: z
    .string()
    .refine((v) => /^[a-z0-9.-]{1,253}$/i.test(v), "must be a DNS name")
    .optional(),
  EGRESS_DNS_CANARY_API: urlVar().optional(),
  // checkd's CHECKD_API_SECRET: the canary's query API answers only this bearer token.
  EGRESS_DNS_CANARY_API_SECRET: z
    .string()
    .refine(isNotPlaceholder, PLACEHOLDER_MESSAGE)
    .refine((v) => Buffer.byteLength(v, "utf8") >= 32, "must be at least 32 bytes")
    .optional(),
  EGRESS_CHECK_FORBIDDEN_RESOLVER: ipv4Var().optional(),
  EGRESS_DNS_ALLOWED_RESOLVERS: cidrListVar(),
  EGRESS_UNDERLAY_PUBLIC_IPS: cidrListVar(),
  EGRESS_CHECK_TIMEOUT_SECONDS: intVar(10, 1),
  EGRESS_TOTAL_TIMEOUT_SECONDS: intVar(30, 1),
  // Continuous attestation (docs/egress.md#attestation): every bound, running host's egress is
  // checked again about this often (0 = off), each one at a jittered moment within the interval,
  // at most EGRESS_ATTEST_CONCURRENCY at once per engine; the history is kept this many days.
  EGRESS_ATTEST_INTERVAL_SECONDS: intVar(300, 0, 86400),
  EGRESS_ATTEST_CONCURRENCY: intVar(2, 1, 32),
  EGRESS_ATTEST_RETENTION_DAYS: intVar(30, 1),
  EGRESS_WG_MTU: intVar(1420, 576, 9000),
  /** WireGuard in the gateways: the kernel module when it works (auto), or forced (docs/egress.md#wireguard-implementation). */
  WIREGUARD_IMPLEMENTATION: z.enum(["auto", "kernel", "userspace"]).default("auto"),
  GATEWAY_READY_TIMEOUT_SECONDS: intVar(15, 1),
  SSH_READY_TIMEOUT_SECONDS: intVar(30, 1),
  CONTAINER_STOP_GRACE_SECONDS: intVar(10, 0),
  RECONCILE_INTERVAL_SECONDS: intVar(30, 1),
  EXPIRY_SCAN_INTERVAL_SECONDS: intVar(30, 1),
  SWEEP_INTERVAL_SECONDS: intVar(60, 1),
  TASK_STALE_AFTER_SECONDS: intVar(600, 1),
  // A job whose host is busy is parked until the task ahead of it ends and wakes it
  // (shared/queue/wake.ts); this is only the safety net if that wake is lost (a killed worker).
  TASK_WAIT_RECHECK_SECONDS: intVar(30, 1, 3600),
  // How long a job and its host stay claimed by a worker that stopped answering (killed, frozen):
  // the BullMQ job lock and the host lock both lapse after this, and the stalled-job check runs
  // every third of it, so a killed worker's job runs again within ~4/3 of it (docs/engines.md#failures).
  // A live worker renews both every third; too short only risks a frozen worker's job running twice.
  WORKER_LEASE_SECONDS: intVar(15, 10, 300),
  TASK_RETENTION_DAYS: intVar(90, 1),
  EVENT_RETENTION_DAYS: intVar(90, 1),
  // Session records and, sooner, their recordings (docs/sessions.md#retention).
  SESSION_RETENTION_DAYS: intVar(90, 1),
  SESSION_RECORDING_RETENTION_DAYS: intVar(30, 1),
  HEARTBEAT_INTERVAL_SECONDS: intVar(5, 1),
  // Idle hosts stop (docs/idle.md): the global policy, used where neither the host nor its owner
  // sets one. A running host with no SSH or desktop connection and CPU under IDLE_CPU_PERCENT (of
  // its CPU limit) for IDLE_STOP_MINUTES is stopped (0 = never); the scan runs per engine.
  IDLE_STOP_MINUTES: intVar(0, 0, 525600),
  IDLE_CPU_PERCENT: intVar(5, 0, 100),
  IDLE_SCAN_INTERVAL_SECONDS: intVar(60, 1, 86400),
  // Disk and logs of a host (README "Disk and logs"): each home is a fixed-size ext4 image of this
  // many MiB (0 = a plain, uncapped volume, for engines that cannot loop-mount), under this
  // directory of the engine's machine; /tmp and /var/tmp are tmpfs of HOST_TMPFS_MB (counted in
  // the host's memory limit); container logs rotate at max-size × max-files.
  HOST_DISK_LIMIT_MB: intVar(10240, 0, 1048576).refine((v) => v === 0 || v >= 256, "must be 0 (no cap) or at least 256"),
  HOST_DISK_DIR: z
    .string()
    .default("/var/lib/cloud-cli-proxy/disks")
    .refine((v) => /^(\/[A-Za-z0-9._-]+)+$/.test(v) && !v.split("/").some((s) => s === "." || s === ".."), "must be an absolute path"),
  HOST_TMPFS_MB: intVar(512, 16, 65536),
  CONTAINER_LOG_MAX_SIZE: z.string().default("10m").refine((v) => /^[1-9]\d{0,5}[kmg]$/.test(v), "must look like 10m (k, m or g)"),
  CONTAINER_LOG_MAX_FILES: intVar(3, 1, 100),
  // The warm pool (docs/architecture.md#warm-pool): this many running gateway + host pairs of the
  // default shape wait to be claimed by a create (0 = off: every create takes the cold path).
  HOST_POOL_SIZE: intVar(2, 0, 32),
  // One started, blocked, underlay-only gateway kept per worker for the next egress test
  // (docs/egress.md#egress-test): the test applies its egress live instead of creating and
  // starting a gateway. Only while the egress checks are configured.
  EGRESS_TEST_SPARE: boolVar(true),
  // Optional listener serving only GET /metrics, without a token (README "Observability").
  WORKER_METRICS_LISTEN_ADDR: optionalListenAddrVar(),
  // Signed webhooks (docs/api.md#webhooks): how often new events are matched against them, how
  // many tries a delivery gets, the first retry's delay (then doubling, BullMQ's exponential
  // back-off: 30 s, 1 min, 2 min… ≈ 1 h over 8 tries), each request's timeout, and how many
  // deliveries one worker sends at once.
  WEBHOOK_DISPATCH_INTERVAL_MS: intVar(2000, 50, 3_600_000),
  WEBHOOK_MAX_ATTEMPTS: intVar(8, 1, 50),
  WEBHOOK_RETRY_BASE_MS: intVar(30_000, 1, 86_400_000),
  WEBHOOK_TIMEOUT_MS: intVar(10_000, 100, 120_000),
  WEBHOOK_CONCURRENCY: intVar(8, 1, 64),
});

/** The variables of the egress checks: a worker has all of them or none. */
export const EGRESS_CHECK_VARIABLES = [
  "EGRESS_CHECK_URL",
  "EGRESS_ECHO_URL",
  "EGRESS_DNS_CANARY_DOMAIN",
  "EGRESS_DNS_CANARY_API",
  "EGRESS_DNS_CANARY_API_SECRET",
  "EGRESS_CHECK_FORBIDDEN_RESOLVER",
] as const;

/** Where a worker's egress checks go (all set), or null when the checks are not configured. */
export interface EgressChecksConfig {
  checkUrl: string;
  echoUrl: string;
  canaryDomain: string;
  canaryApi: string;
  canaryApiSecret: string;
  forbiddenResolver: string;
  defaultDnsServer: string;
}

export type WorkerConfig = z.output<typeof workerConfigSchema> & { WORKER_ID: string; EGRESS_CHECKS: EgressChecksConfig | null };

export function parseWorkerConfig(source: Record<string, string | undefined>): WorkerConfig {
  const cfg = parseConfig(workerConfigSchema, source);
  const set = EGRESS_CHECK_VARIABLES.filter((k) => cfg[k] !== undefined);
  const missing = EGRESS_CHECK_VARIABLES.filter((k) => cfg[k] === undefined);
  if (set.length > 0 && missing.length > 0) {
    // Half a check configuration is a mistake, never a choice: name what is missing.
    throw new ConfigError(missing[0]!, `is required: the egress check variables are set all or none (missing: ${missing.join(", ")})`);
  }
  if (cfg.EGRESS_DEFAULT_DNS_SERVER === undefined && (set.length > 0 || cfg.EGRESS_UNBOUND_POLICY === "direct")) {
    throw new ConfigError("EGRESS_DEFAULT_DNS_SERVER", "is required with the egress checks or EGRESS_UNBOUND_POLICY=direct");
  }
  const checks: EgressChecksConfig | null =
    set.length > 0
      ? {
          checkUrl: cfg.EGRESS_CHECK_URL!,
          echoUrl: cfg.EGRESS_ECHO_URL!,
          canaryDomain: cfg.EGRESS_DNS_CANARY_DOMAIN!.replace(/\.$/, ""),
          canaryApi: cfg.EGRESS_DNS_CANARY_API!,
          canaryApiSecret: cfg.EGRESS_DNS_CANARY_API_SECRET!,
          forbiddenResolver: cfg.EGRESS_CHECK_FORBIDDEN_RESOLVER!,
          defaultDnsServer: cfg.EGRESS_DEFAULT_DNS_SERVER!,
        }
      : null;
  return { ...cfg, WORKER_ID: cfg.WORKER_ID ?? defaultWorkerId(), EGRESS_CHECKS: checks };
}

/**
 * hostname-pid plus 4 random bytes: replicas in containers sharing the machine's network (compose
 * `network_mode: host`, `--scale worker=3`) all see the same hostname and run as PID 1, so
 * hostname-pid alone gave every one of them the same id and heartbeat.
 */
export function defaultWorkerId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(4).toString("hex")}`;
}
