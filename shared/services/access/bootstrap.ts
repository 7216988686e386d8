import { and, eq, isNull } from "drizzle-orm";
import { hosts, tasks, users, type HostRow, type TaskRow, type TaskStep } from "../../db/schema/index.js";
import { Forbidden, NotFound, ServiceError, Unavailable } from "../../errors.js";
import { isInfrastructureError } from "../../infra-errors.js";
import { isUuid } from "../../validation.js";
import { checkPassword } from "../auth/password-gate.js";
import type { AuthDeps, ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { insertTask } from "../tasks/create.js";
import { isExpired } from "../users/render.js";
import { AccessError, AuthInvalid, scriptSafeText, TaskNotFound } from "./errors.js";
import type { BootstrapSessionInput } from "./schemas.js";
import { proxyHostKey, type SshEndpoint } from "./ssh-target.js";
import { mintSshTicket } from "./tickets.js";

export const STAGE_TEXT = {
  auth_passed: "Authenticated; waiting for your host",
  host_starting: "Starting your host",
  network_ready: "Network ready (egress verified)",
  ssh_ready: "SSH ready",
  failed: "Host failed to start",
} as const;
export type StageCode = keyof typeof STAGE_TEXT;

export const statusUrl = (taskId: string) => `/v1/bootstrap/tasks/${taskId}`;

/** The start task's payload for a host stopped for idleness: a wake by script (docs/idle.md#wake). */
export const wakePayload = (host: Pick<HostRow, "idleStoppedAt" | "status">): Record<string, unknown> =>
  host.idleStoppedAt && host.status !== "running" ? { woken_by: "script" } : {};

/** What the scripts print while a woken host comes up ("[ 40%] Waking your host..."). */
const WAKE_TEXT = "Waking your host (stopped while idle)...";

function stageText(stage: StageCode, task: Pick<TaskRow, "payload">): string {
  const waking = (task.payload as { woken_by?: unknown } | null)?.woken_by !== undefined;
  return waking && (stage === "auth_passed" || stage === "host_starting") ? WAKE_TEXT : STAGE_TEXT[stage];
}

/**
 * The code the scripts branch on for a failed start task (docs/api.md#bootstrap): the two codes with
 * their own exit status pass through, a stale task is an SSH timeout, the rest is a start failure.
 */
export function scriptErrorCode(taskErrorCode: string | null): "ssh_not_ready" | "egress_binding_missing" | "start_failed" {
  if (taskErrorCode === "ssh_not_ready" || taskErrorCode === "egress_binding_missing") return taskErrorCode;
  if (taskErrorCode === "stale_timeout") return "ssh_not_ready";
  return "start_failed";
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/**
 * Stage and percentage of a start task, as the scripts show them. The percentage lives in a band
 * per stage, so it never goes back as the stage advances: the task's own progress counts steps
 * (and restarts at 0 when a transient error makes the worker run the task again).
 */
export function bootstrapStage(task: Pick<TaskRow, "status" | "steps" | "progressPercent">): {
  stage_code: StageCode;
  progress_percent: number;
} {
  const steps: TaskStep[] = Array.isArray(task.steps) ? task.steps : [];
  const step = (name: string) => steps.find((s) => s.name === name)?.status;
  const p = task.progressPercent;
  switch (task.status) {
    case "pending":
      return { stage_code: "auth_passed", progress_percent: 5 };
    case "succeeded":
      return { stage_code: "ssh_ready", progress_percent: 100 };
    case "failed":
    case "canceled":
      return { stage_code: "failed", progress_percent: clamp(p, 0, 100) };
    case "running":
      if (step("wait_ssh") === "succeeded") return { stage_code: "ssh_ready", progress_percent: 95 };
      if (step("verify_egress") === "succeeded" || step("verify_egress") === "skipped") {
        return { stage_code: "network_ready", progress_percent: clamp(p, 75, 90) };
      }
      return { stage_code: "host_starting", progress_percent: clamp(p, 10, 70) };
  }
}

/** Tasks the bootstrap endpoints show: start tasks created by a bootstrap session or an entry auth. */
async function loadAccessTask(ctx: ServiceContext, taskId: string, origins: readonly TaskRow["origin"][]): Promise<TaskRow> {
  if (!isUuid(taskId)) throw TaskNotFound();
  const [task] = await ctx.db.select().from(tasks).where(eq(tasks.id, taskId.toLowerCase()));
  if (!task || task.kind !== "host.ensure-running" || !origins.includes(task.origin)) throw TaskNotFound();
  return task;
}

/** `POST /v1/bootstrap/sessions` (docs/api.md#bootstrap steps 1–7). */
export async function createBootstrapSession({ ctx, input }: { ctx: ServiceContext & AuthDeps; input: BootstrapSessionInput }) {
  const failed = (reason: string, userId: string | null, hostId: string | null = null) =>
    recordEvent(ctx.db, {
      type: "bootstrap.session.failed",
      level: "warn",
      message: "bootstrap session refused",
      // No actor before the password is proven.
      actorId: userId,
      userId,
      hostId,
      metadata: { ip: ctx.ip, reason },
    });

  // Rate limits (429) come first, then one uniform answer for unknown user and wrong password.
  const outcome = await checkPassword(ctx, { username: input.username, password: input.password, endpoint: "/v1/bootstrap/sessions" });
  if (!outcome.ok) {
    if (outcome.reason === "invalid_credentials") {
      await failed("auth_invalid", null);
      throw AuthInvalid();
    }
    await failed(outcome.reason, outcome.user.id);
    throw Forbidden(outcome.reason, outcome.reason === "account_disabled" ? "account is disabled" : "account has expired");
  }
  const { user } = outcome;

  let task: TaskRow;
  try {
    task = await ctx.db.transaction(async (tx) => {
      // One host per user; a host being deleted is as good as none.
      const [host] = await tx.select().from(hosts).where(eq(hosts.userId, user.id)).for("update");
      if (!host || host.status === "deleting") throw NotFound("host_not_found", "you have no host");
      await tx
        .update(hosts)
        .set({ desiredState: "running", updatedAt: ctx.clock(), repairAttempts: 0, repairNotBefore: null })
        .where(eq(hosts.id, host.id));
      // Each session gets its own task: tasks of a host run in order, so a second one is a no-op.
      const created = await insertTask(tx, {
        kind: "host.ensure-running",
        hostId: host.id,
        requestedBy: user.id,
        origin: "bootstrap",
        payload: wakePayload(host),
        requestId: ctx.requestId,
      });
      await recordEvent(tx, {
        type: "bootstrap.session.created",
        message: `bootstrap session for host ${host.shortId}`,
        actorId: user.id,
        userId: user.id,
        hostId: host.id,
        taskId: created.id,
        metadata: { ip: ctx.ip },
      });
      return created;
    });
  } catch (err) {
    if (err instanceof ServiceError && err.code === "host_not_found") await failed("host_not_found", user.id);
    if (isInfrastructureError(err)) {
      ctx.logger.warn({ err: String(err) }, "bootstrap start task could not be created");
      throw Unavailable("start_failed", "your host could not be started; try again later");
    }
    throw err;
  }
  await ctx.enqueue(task);
  return { task_id: task.id, status_url: statusUrl(task.id), stage_code: "auth_passed" as const, stage_text: STAGE_TEXT.auth_passed };
}

/** `GET /v1/bootstrap/tasks/{taskID}` (docs/api.md#bootstrap). */
export async function getBootstrapTask({ ctx, taskId }: { ctx: ServiceContext; taskId: string }) {
  const task = await loadAccessTask(ctx, taskId, ["bootstrap", "entry"]);
  const { stage_code, progress_percent } = bootstrapStage(task);
  const body: Record<string, unknown> = {
    task_id: task.id,
    task_status: task.status,
    stage_code,
    stage_text: stageText(stage_code, task),
    progress_percent,
  };
  if (stage_code === "failed") {
    body.error_code = scriptErrorCode(task.errorCode);
    body.task_error_code = task.errorCode;
    body.error_message = scriptSafeText(task.errorMessage ?? STAGE_TEXT.failed);
  }
  return body;
}

/**
 * `GET /v1/bootstrap/tasks/{taskID}/handoff` (docs/api.md#bootstrap): the one-time SSH ticket.
 *
 * Only within `windowSeconds` of the task's end (HANDOFF_WINDOW_SECONDS, issue 10 §5): the task id
 * is the only credential this endpoint asks for, and it sits in the script's output and terminal
 * scrollback, so a succeeded task must not stay redeemable for a ticket indefinitely.
 */
export async function issueHandoff({
  ctx,
  taskId,
  ssh,
}: {
  ctx: ServiceContext;
  taskId: string;
  ssh: SshEndpoint & { ticketTtlSeconds: number; windowSeconds: number };
}) {
  const task = await loadAccessTask(ctx, taskId, ["bootstrap"]);
  if (task.status === "pending" || task.status === "running") {
    throw new AccessError("unavailable", "ssh_not_ready", "your host is not ready yet", { retryAfterSeconds: 2 });
  }
  if (task.status !== "succeeded") {
    const message = scriptSafeText(task.errorMessage ?? STAGE_TEXT.failed);
    throw new AccessError("unavailable", scriptErrorCode(task.errorCode), message, {}, { task_error_code: task.errorCode });
  }
  if (task.handoffIssuedAt) throw Consumed();
  const now = ctx.clock();
  // A succeeded task always has finished_at; without one there is no window to be inside.
  if (!task.finishedAt || now.getTime() - task.finishedAt.getTime() > ssh.windowSeconds * 1000) throw Expired();

  const key = await proxyHostKey(ctx.db, ctx.secrets, ssh);
  const { shortId, ticket } = await ctx.db.transaction(async (tx) => {
    // Checked before the ticket is minted, so a refusal here does not use up the handoff.
    const [row] = await tx
      .select({ host: hosts, owner: users })
      .from(hosts)
      .innerJoin(users, eq(users.id, hosts.userId))
      .where(eq(hosts.id, task.hostId!));
    if (!row || row.host.status === "deleting" || row.owner.deletedAt) throw NotFound("host_not_found", "your host no longer exists");
    if (row.owner.status === "disabled") throw Forbidden("account_disabled", "account is disabled");
    if (isExpired(row.owner, now)) throw Forbidden("account_expired", "account has expired");
    // Minted once per task: the compare-and-set makes concurrent calls race for one ticket.
    const [claimed] = await tx
      .update(tasks)
      .set({ handoffIssuedAt: now })
      .where(and(eq(tasks.id, task.id), isNull(tasks.handoffIssuedAt)))
      .returning({ id: tasks.id });
    if (!claimed) throw Consumed();
    const { ticket, expiresAt } = await mintSshTicket(tx, {
      hostId: row.host.id,
      userId: row.owner.id,
      taskId: task.id,
      now,
      ttlSeconds: ssh.ticketTtlSeconds,
    });
    await recordEvent(tx, {
      type: "bootstrap.handoff.issued",
      message: `bootstrap handoff issued for host ${row.host.shortId}`,
      actorId: row.owner.id,
      userId: row.owner.id,
      hostId: row.host.id,
      taskId: task.id,
      metadata: { task_id: task.id, expires_at: expiresAt.toISOString() },
    });
    return { shortId: row.host.shortId, ticket };
  });
  return {
    ready: true as const,
    host: ssh.sshPublicHost,
    port: ssh.sshPublicPort,
    user: shortId,
    password: ticket,
    host_key: key.host_key,
    known_hosts_line: key.known_hosts_line,
  };
}

const Consumed = () => new ServiceError("gone", "handoff_consumed", "the handoff for this task was already issued");
const Expired = () =>
  new ServiceError("gone", "handoff_expired", "the handoff window of this task has closed; run the bootstrap command again");
