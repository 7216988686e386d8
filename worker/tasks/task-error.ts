/** Stable task error codes (docs/api.md#task-errors). */
export const TASK_ERROR_CODES = [
  "docker_unavailable",
  "image_missing",
  "container_start_failed",
  "tunnel_setup_failed",
  "egress_binding_missing",
  "egress_unreachable",
  "egress_ip_mismatch",
  "dns_leak",
  "leak_detected",
  "ssh_not_ready",
  "host_not_found",
  "canceled",
  "stale_timeout",
  // A stored secret that does not decrypt in its row (moved, tampered, or its key version missing):
  // retrying cannot help; an administrator sets the secret again (issue 10 §5).
  "secret_unreadable",
  // A file inside the host that the worker reads is larger or other than it can safely read
  // (the tenant controls it); the tenant fixes it, retrying cannot help (issue 10 §2).
  "host_file_rejected",
  // The engine's disk agent could not create, mount or remove a home's fixed-size filesystem
  // (no loop device, e2fsprogs missing, image gone): an operator fixes the engine (issue 10 §2).
  "disk_setup_failed",
  // The host's home filesystem is full, so the worker could not write into it (the tenant frees space).
  "host_disk_full",
  // The worker has no egress check endpoints (EGRESS_CHECK_URL and the rest, README "Deploying the
  // egress check service (checkd)"): an egress cannot be verified until an operator configures them.
  "egress_checks_not_configured",
  // A host move's home arrived on the target with another length or checksum than the source sent
  // (docs/api.md#hosts-move): the host stays on its engine.
  "home_copy_mismatch",
  "internal_error",
] as const;
export type TaskErrorCode = (typeof TASK_ERROR_CODES)[number];

/** Only these are retried (3 attempts, 2 s / 4 s / 8 s); every other code fails at once. */
export const TRANSIENT_CODES: ReadonlySet<TaskErrorCode> = new Set(["docker_unavailable", "internal_error"]);

export class TaskError extends Error {
  constructor(
    readonly code: TaskErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "TaskError";
  }
  get transient(): boolean {
    return TRANSIENT_CODES.has(this.code);
  }
}

/** Thrown at a step boundary when the task's cancel was requested (cooperative cancel). */
export class TaskCanceled extends Error {
  constructor() {
    super("task canceled");
    this.name = "TaskCanceled";
  }
}
