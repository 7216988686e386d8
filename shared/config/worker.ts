import { hostname } from "node:os";
import { z } from "zod";
import { commonConfigShape } from "./common.js";
import { boolVar, cidrListVar, intVar, ipv4Var, urlVar } from "./fields.js";
import { parseConfig } from "./parse.js";

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
  // Required, with no defaults, so that no default ever points at a public service.
  EGRESS_DEFAULT_DNS_SERVER: ipv4Var(),
  EGRESS_CHECK_URL: urlVar(),
  EGRESS_ECHO_URL: urlVar(),
  EGRESS_DNS_CANARY_DOMAIN: z.string().refine((v) => /^[a-z0-9.-]{1,253}$/i.test(v), "must be a DNS name"),
  EGRESS_DNS_CANARY_API: urlVar(),
  EGRESS_CHECK_FORBIDDEN_RESOLVER: ipv4Var(),
  EGRESS_DNS_ALLOWED_RESOLVERS: cidrListVar(),
  EGRESS_UNDERLAY_PUBLIC_IPS: cidrListVar(),
  EGRESS_CHECK_TIMEOUT_SECONDS: intVar(10, 1),
  EGRESS_TOTAL_TIMEOUT_SECONDS: intVar(30, 1),
  EGRESS_WG_MTU: intVar(1420, 576, 9000),
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
  TASK_RETENTION_DAYS: intVar(90, 1),
  EVENT_RETENTION_DAYS: intVar(90, 1),
  HEARTBEAT_INTERVAL_SECONDS: intVar(5, 1),
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
});

export type WorkerConfig = z.output<typeof workerConfigSchema> & { WORKER_ID: string };

export function parseWorkerConfig(source: Record<string, string | undefined>): WorkerConfig {
  const cfg = parseConfig(workerConfigSchema, source);
  return { ...cfg, WORKER_ID: cfg.WORKER_ID ?? `${hostname()}-${process.pid}` };
}
