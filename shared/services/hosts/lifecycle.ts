import { and, desc, eq, inArray, ne } from "drizzle-orm";
import { generatePassword } from "../../crypto/random.js";
import { secretAt } from "../../crypto/secrets.js";
import type { Tx } from "../../db/client.js";
import { hosts, tasks, users, type HostRow, type TaskRow } from "../../db/schema/index.js";
import { Conflict } from "../../errors.js";
import type { TaskKind } from "../../queue/contracts.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { insertTask } from "../tasks/create.js";
import { requestHostTask } from "../tasks/request.js";
import { isExpired } from "../users/render.js";
import { assertNotDeleting, getHost } from "./lookup.js";

type Lifecycle = "start" | "stop" | "rebuild";

const KIND: Record<Lifecycle, TaskKind> = { start: "host.start", stop: "host.stop", rebuild: "host.rebuild" };

/**
 * Start, stop or rebuild (docs/api.md#hosts-lifecycle): never rejected because another operation runs —
 * tasks of one host execute one at a time in creation order (docs/architecture.md#tasks).
 */
export async function requestHostLifecycle({
  ctx,
  hostId,
  op,
  mode,
  ownerId,
}: {
  ctx: ServiceContext;
  hostId: string;
  op: Lifecycle;
  mode?: "preserve-home" | "wipe-home";
  /** Portal calls: the host must belong to this user (else 404). */
  ownerId?: string;
}) {
  const { task, created } = await ctx.db.transaction(async (tx) => {
    const host = await getHost(tx, hostId, { forUpdate: true, ownerId });
    assertNotDeleting(host);
    const [owner] = await tx.select().from(users).where(eq(users.id, host.userId));
    if (op !== "stop" && (!owner || owner.status !== "active" || isExpired(owner, ctx.clock()))) {
      throw Conflict("user_inactive", "the host's owner is disabled or expired");
    }
    await tx
      .update(hosts)
      // An explicit start, stop or rebuild ends a stop for idleness: a host stopped by a person
      // does not wake on the next login (docs/idle.md#wake).
      .set({ desiredState: op === "stop" ? "stopped" : "running", idleStoppedAt: null, updatedAt: ctx.clock(), repairAttempts: 0, repairNotBefore: null })
      .where(eq(hosts.id, host.id));
    const { task, created } = await requestHostTask(
      tx,
      {
        kind: KIND[op],
        hostId: host.id,
        requestedBy: ctx.actor!.id,
        payload: op === "rebuild" ? { mode: mode ?? "preserve-home" } : {},
        requestId: ctx.requestId,
      },
      ctx.maxPendingTasksPerHost,
    );
    // A repeat of the request already waiting changes nothing: no second event either (a flood
    // of identical requests must not fill the event log).
    if (!created) return { task, created };
    await recordEvent(tx, {
      type: `host.${op}.requested`,
      message: `${op} requested for host ${host.shortId}`,
      actorId: ctx.actor?.id,
      userId: host.userId,
      hostId: host.id,
      taskId: task.id,
      metadata: op === "rebuild" ? { mode: mode ?? "preserve-home" } : {},
    });
    return { task, created };
  });
  if (created) await ctx.enqueue(task);
  return { task_id: task.id };
}

export async function rotateHostSshPassword({ ctx, hostId }: { ctx: ServiceContext; hostId: string }) {
  const password = generatePassword();
  await ctx.db.transaction(async (tx) => {
    const host = await getHost(tx, hostId, { forUpdate: true });
    assertNotDeleting(host);
    // The SSH proxy checks passwords against the database: effective at once, no task (docs/api.md#hosts-lifecycle).
    await tx
      .update(hosts)
      .set({ sshPasswordEnc: ctx.secrets.encrypt(password, secretAt.host(host.id, "ssh_password_enc")), updatedAt: ctx.clock() })
      .where(eq(hosts.id, host.id));
    await recordEvent(tx, {
      type: "host.ssh_password.rotated",
      message: `SSH password of host ${host.shortId} rotated`,
      actorId: ctx.actor?.id,
      userId: host.userId,
      hostId: host.id,
    });
  });
  return { ssh_password: password };
}

/**
 * Put a host into `deleting` and create its `host.delete` task (host DELETE and user DELETE share
 * this). Idempotent: a host already deleting answers with its live delete task.
 */
export async function requestHostDeletion(
  tx: Tx,
  host: HostRow,
  opts: { keepHome: boolean; requestedBy: string; actorId: string | null; now: Date; requestId?: string },
): Promise<{ task: TaskRow; created: boolean }> {
  if (host.status === "deleting") {
    const [live] = await tx
      .select()
      .from(tasks)
      .where(and(eq(tasks.hostId, host.id), eq(tasks.kind, "host.delete"), inArray(tasks.status, ["pending", "running"])))
      .orderBy(desc(tasks.createdAt))
      .limit(1);
    if (live) return { task: live, created: false };
  }
  await tx
    .update(hosts)
    .set({ status: "deleting", desiredState: "deleted", updatedAt: opts.now })
    .where(eq(hosts.id, host.id));
  // Pending work of a host being deleted is superseded (docs/api.md#hosts-lifecycle); a running task gets a
  // cooperative cancel where its kind allows it.
  await tx
    .update(tasks)
    .set({ status: "canceled", errorCode: "canceled", errorMessage: "superseded by the deletion of the host", finishedAt: opts.now })
    .where(and(eq(tasks.hostId, host.id), eq(tasks.status, "pending")));
  await tx
    .update(tasks)
    .set({ cancelRequested: true })
    .where(
      and(
        eq(tasks.hostId, host.id),
        eq(tasks.status, "running"),
        inArray(tasks.kind, ["host.create", "host.start", "host.rebuild", "host.ensure-running"]),
      ),
    );
  const task = await insertTask(tx, {
    kind: "host.delete",
    hostId: host.id,
    requestedBy: opts.requestedBy,
    origin: opts.requestedBy.startsWith("system:") ? "system" : "api",
    payload: { keep_home: opts.keepHome },
    requestId: opts.requestId,
  });
  await recordEvent(tx, {
    type: "host.delete.requested",
    message: `deletion requested for host ${host.shortId}`,
    actorId: opts.actorId,
    userId: host.userId,
    hostId: host.id,
    taskId: task.id,
    metadata: { keep_home: opts.keepHome },
  });
  return { task, created: true };
}

export async function deleteHost({ ctx, hostId, keepHome }: { ctx: ServiceContext; hostId: string; keepHome: boolean }) {
  const { task, created } = await ctx.db.transaction(async (tx) => {
    const host = await getHost(tx, hostId, { forUpdate: true });
    return requestHostDeletion(tx, host, {
      keepHome,
      requestedBy: ctx.actor!.id,
      actorId: ctx.actor?.id ?? null,
      now: ctx.clock(),
      requestId: ctx.requestId,
    });
  });
  await ctx.revoke({ scope: "host", id: task.hostId!, reason: "host_deleted" });
  if (created) await ctx.enqueue(task);
  return { task_id: task.id };
}

/**
 * Stop every host of a user (disable, expiry): `desired_state = stopped` and, unless already
 * stopped, a `host.stop` task. Returns the tasks to enqueue after commit.
 */
export async function stopHostsOfUser(
  tx: Tx,
  userId: string,
  opts: { requestedBy: `system:${string}`; now: Date; requestId?: string },
): Promise<TaskRow[]> {
  const owned = await tx
    .select()
    .from(hosts)
    .where(and(eq(hosts.userId, userId), ne(hosts.status, "deleting")))
    .for("update");
  const created: TaskRow[] = [];
  for (const host of owned) {
    // Stopped for the account's sake, not for idleness: no wake (docs/idle.md#wake).
    await tx.update(hosts).set({ desiredState: "stopped", idleStoppedAt: null, updatedAt: opts.now }).where(eq(hosts.id, host.id));
    if (host.status === "stopped") continue;
    created.push(
      await insertTask(tx, { kind: "host.stop", hostId: host.id, requestedBy: opts.requestedBy, origin: "system", requestId: opts.requestId }),
    );
  }
  return created;
}
