import type { TaskRef } from "../queue/queues.js";
import type { WorkGate } from "../auth/work-gate.js";
import type { Redis } from "ioredis";
import type { FailureLimiter } from "../auth/rate-limit.js";
import type { TokenService } from "../auth/tokens.js";
import type { SecretBox } from "../crypto/secrets.js";
import type { Db } from "../db/client.js";
import type { Logger } from "../logger.js";
import type { LiveNotifier } from "./live/notify.js";
import type { Revocation } from "./revocations.js";

/** Dependencies the domain verbs need; built once per process in its composition root. */
export interface ServiceDeps {
  db: Db;
  /**
   * Hand a committed task to the queue (job id = task id). Failures are logged, not thrown: the
   * request already succeeded and the sweeper enqueues pending tasks that have no job (docs/architecture.md#async-work).
   */
  enqueue: (task: TaskRef, log?: Logger) => Promise<void>;
  /**
   * After a task of a host ended (or was canceled while pending): promote the host's next pending
   * task's job, parked while the host was busy (shared/queue/wake.ts). Best effort, never throws.
   */
  wakeHost: (hostId: string, log?: Logger) => Promise<void>;
  /** HOST_MAX_PENDING_TASKS: requested tasks one host may have waiting (shared/services/tasks/request.ts). */
  maxPendingTasksPerHost: number;
  /**
   * Announce a committed task or host change to the live-update streams (after commit; best
   * effort, never throws; shared/services/live/notify.ts). A change not announced still reaches
   * the streams at their next interval poll.
   */
  notifyLive: LiveNotifier;
  /** Broadcast an access revocation to the SSH proxies (after commit; best effort). */
  revoke: (r: Revocation) => Promise<void>;
  /**
   * Whether a live worker can run egress checks (false: none can; null: no live worker). Set by the
   * API from the workers' heartbeats (shared/services/egress/checks.ts); absent elsewhere.
   */
  egressChecksAvailable?: () => Promise<boolean | null>;
  /** ENGINE_DEAD_AFTER_SECONDS (docs/engines.md#health); 30 where the process does not set it. */
  engineDeadAfterSeconds?: number;
  redis: Redis;
  secrets: SecretBox;
  logger: Logger;
  clock: () => Date;
}

export interface Actor {
  id: string;
  role: "admin" | "user";
  username: string;
}

/** Per-request context: who is acting and from where. */
export interface ServiceContext extends ServiceDeps {
  actor: Actor | null;
  ip: string;
  /**
   * The HTTP request's id (X-Request-Id), when the verb runs for one: tasks it creates record it,
   * so one id follows an operation from the request to the worker's log lines (README "Observability").
   */
  requestId?: string;
}

export interface AuthDeps {
  tokens: TokenService;
  limiter: FailureLimiter;
  /** Bounds concurrent argon2 verifications process-wide (shared/auth/work-gate.ts). */
  passwordWork: WorkGate;
}
