import { and, eq, inArray } from "drizzle-orm";
import { hostPool, hosts, retainedVolumes, tasks, type HostRow } from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";
import { insertTask } from "../../shared/services/tasks/create.js";
import type { WorkerDeps } from "../deps.js";
import { diskDirOf, runDiskOp } from "../hosts/disk.js";
import { LABEL_HOST_ID, LABEL_ROLE, LABEL_TASK_ID } from "../hosts/names.js";
import type { ContainerState } from "../runtime/runtime.js";
import { reportRulesetRestores } from "../network/ruleset-watch.js";
import { reconcilePool } from "../pool/reconcile.js";

/** Repairs of one host back off 30 s, 1 min, 2 min … up to 30 min, and stop after this many. */
export const MAX_REPAIR_ATTEMPTS = 10;
const backoffMs = (attempts: number) => Math.min(30_000 * 2 ** attempts, 30 * 60_000);
const EPHEMERAL_MAX_AGE_MS = 5 * 60_000;
/**
 * A probe or test gateway is started right after it is created and removes itself when done: one
 * that is not running a minute after its creation belongs to a worker that died between the two
 * (seen in the chaos stage's worker kills) and is reaped without waiting EPHEMERAL_MAX_AGE_MS.
 */
const EPHEMERAL_DEAD_AFTER_MS = 60_000;

type Observed = { gateway?: ContainerState; host?: ContainerState };

/**
 * Make Docker equal to the database (docs/architecture.md#schedulers): repair drift of hosts that should run
 * or be stopped, resume deletions, and remove labelled objects nothing owns. Runs as a BullMQ job
 * scheduler, so one replica at a time; the repairs it creates record the run's request id.
 */
export async function runReconcile(deps: WorkerDeps, run: { requestId?: string } = {}): Promise<{ repairs: number; orphans: number; pool: number }> {
  const { db, runtime } = deps;
  const now = deps.clock();
  // Docker first, then the database: a host created in between is then known, never an orphan.
  const containers = await runtime.listManagedContainers();
  const volumes = await runtime.listManagedVolumes();
  // Pool members before hosts: a member claimed in between has its host row by the time hosts are
  // read (docs/architecture.md#warm-pool), so its objects are never taken for orphans.
  const members = await db.select().from(hostPool).where(eq(hostPool.engineId, deps.config.ENGINE_ID));
  const rows = await db.select().from(hosts).where(eq(hosts.engineId, deps.config.ENGINE_ID));
  const live = await db
    .select({ hostId: tasks.hostId, kind: tasks.kind, payload: tasks.payload })
    .from(tasks)
    .where(inArray(tasks.status, ["pending", "running"]));
  const busy = new Set(live.map((t) => t.hostId).filter(Boolean));
  // A host being moved has objects on two engines at once (its home is copied before its row
  // names the target, and the source's are removed only after the target runs): neither engine's
  // reconciler may take them for orphans while the move is unfinished (docs/api.md#hosts-move).
  const moving = live.filter((t) => t.kind === "host.move" && t.hostId).map((t) => t.hostId!);
  const known = new Set([...rows.map((h) => h.id), ...members.map((m) => m.id), ...moving]);
  const observed = new Map<string, Observed>();
  for (const c of containers) {
    const hostId = c.labels[LABEL_HOST_ID];
    if (!hostId) continue;
    const o = observed.get(hostId) ?? {};
    if (c.labels[LABEL_ROLE] === "gateway") o.gateway = c;
    if (c.labels[LABEL_ROLE] === "host") o.host = c;
    observed.set(hostId, o);
  }

  // This engine answers (its containers were just listed): hosts marked `unreachable` while it was
  // dead get their real status back, then converge like any other (docs/engines.md#health).
  for (const host of rows) {
    if (host.status !== "unreachable") continue;
    const o = observed.get(host.id) ?? {};
    host.status = await recoverReachable(deps, host, o.gateway?.running && o.host?.running ? "running" : "stopped");
  }

  let repairs = 0;
  for (const host of rows) {
    if (busy.has(host.id) || host.status === "pending") continue;
    if (host.status === "deleting") {
      const [last] = await db
        .select({ payload: tasks.payload })
        .from(tasks)
        .where(and(eq(tasks.hostId, host.id), eq(tasks.kind, "host.delete")))
        .limit(1);
      await repair(deps, run, host, "host.delete", "system:reconcile", {
        expected: "deleted",
        observed: "deleting without a live delete task",
        payload: { keep_home: (last?.payload as { keep_home?: boolean } | undefined)?.keep_home === true },
      });
      repairs++;
      continue;
    }
    if (host.repairNotBefore && host.repairNotBefore > now) continue;
    if (host.repairAttempts >= MAX_REPAIR_ATTEMPTS) continue;
    const o = observed.get(host.id) ?? {};
    if (host.desiredState === "running") {
      let problem: string | null = null;
      let requestedBy: `system:${string}` = "system:reconcile";
      if (host.status === "failed") problem = "failed";
      else if (!o.gateway || !o.host) problem = `${!o.gateway ? "gateway" : "host"} container missing`;
      else if (!o.gateway.running || !o.host.running) problem = `${!o.gateway.running ? "gateway" : "host"} container stopped`;
      else if (o.gateway.startedAt && o.host.startedAt && o.host.startedAt < o.gateway.startedAt) {
        problem = "gateway restarted after the host";
        requestedBy = "system:gateway-restart";
      }
      if (problem) {
        await repair(deps, run, host, "host.ensure-running", requestedBy, { expected: "running", observed: problem });
        repairs++;
      }
    } else if (host.desiredState === "stopped" && (o.gateway?.running || o.host?.running) && host.status !== "stopping") {
      await repair(deps, run, host, "host.stop", "system:reconcile", { expected: "stopped", observed: "containers running" });
      repairs++;
    }
  }

  const pool = await reconcilePool(deps, members, containers, new Set(rows.map((h) => h.id)), busy);

  // docs/egress.md#gateway: kill-switch rulesets the gateways had to restore since the last cycle (an error event).
  await reportRulesetRestores(deps, containers).catch((err: unknown) => deps.logger.warn({ err }, "ruleset restore check failed"));

  let orphans = 0;
  const retained = new Set((await db.select({ name: retainedVolumes.volumeName }).from(retainedVolumes)).map((r) => r.name));
  for (const c of containers) {
    const role = c.labels[LABEL_ROLE];
    const hostId = c.labels[LABEL_HOST_ID];
    const ephemeral = role === "probe" || role === "gwtest";
    const age = now.getTime() - c.createdAt.getTime();
    const orphan = ephemeral
      ? Boolean(c.labels[LABEL_TASK_ID]) && (age > EPHEMERAL_MAX_AGE_MS || (!c.running && age > EPHEMERAL_DEAD_AFTER_MS))
      : Boolean(hostId) && !known.has(hostId!);
    if (!orphan) continue;
    await runtime.removeContainer(c.name);
    await recordEvent(db, {
      type: "reconcile.orphan.removed",
      message: `removed orphaned container ${c.name}`,
      hostId: hostId ?? null,
      metadata: { object: "container", name: c.name },
    });
    orphans++;
  }
  for (const v of volumes) {
    const hostId = v.labels[LABEL_HOST_ID];
    if (!hostId || known.has(hostId) || retained.has(v.name)) continue;
    await runtime.removeVolume(v.name);
    // A home on its own filesystem: unmount it and delete its image too. (An image whose volume
    // was never created — a worker killed between the two — is not found by this sweep.)
    const diskDir = diskDirOf(v, hostId);
    if (diskDir) {
      // Logged, not thrown: one home the agent cannot remove must not stop the rest of the sweep.
      await runDiskOp(deps, "remove", diskDir, hostId).catch((err: unknown) =>
        deps.logger.warn({ err, hostId }, "could not remove the filesystem of an orphaned home"),
      );
    }
    await recordEvent(db, {
      type: "reconcile.orphan.removed",
      message: `removed orphaned volume ${v.name}`,
      hostId,
      metadata: { object: "volume", name: v.name },
    });
    orphans++;
  }
  return { repairs, orphans, pool };
}

async function repair(
  deps: WorkerDeps,
  run: { requestId?: string },
  host: HostRow,
  kind: "host.ensure-running" | "host.stop" | "host.delete",
  requestedBy: `system:${string}`,
  info: { expected: string; observed: string; payload?: Record<string, unknown> },
): Promise<void> {
  const now = deps.clock();
  const task = await deps.db.transaction(async (tx) => {
    const task = await insertTask(tx, {
      kind,
      hostId: host.id,
      requestedBy,
      origin: "system",
      payload: info.payload ?? {},
      requestId: run.requestId,
    });
    if (kind !== "host.delete") {
      await tx
        .update(hosts)
        .set({ repairAttempts: host.repairAttempts + 1, repairNotBefore: new Date(now.getTime() + backoffMs(host.repairAttempts)) })
        .where(eq(hosts.id, host.id));
    }
    await recordEvent(tx, {
      type: "reconcile.drift.detected",
      level: "warn",
      message: `host ${host.shortId}: ${info.observed}`,
      userId: host.userId,
      hostId: host.id,
      taskId: task.id,
      metadata: { expected: info.expected, observed: info.observed, action: kind },
    });
    if (requestedBy === "system:gateway-restart") {
      await recordEvent(tx, {
        type: "host.gateway.restarted",
        level: "warn",
        message: `gateway of host ${host.shortId} restarted; restarting the host`,
        userId: host.userId,
        hostId: host.id,
        taskId: task.id,
      });
    }
    return task;
  });
  await deps.enqueue(task);
}

/** An `unreachable` host whose engine answers again: the status Docker shows (compare-and-set), an event, a live update. */
async function recoverReachable(deps: WorkerDeps, host: HostRow, status: "running" | "stopped"): Promise<HostRow["status"]> {
  const [row] = await deps.db
    .update(hosts)
    .set({ status, updatedAt: deps.clock() })
    .where(and(eq(hosts.id, host.id), eq(hosts.status, "unreachable")))
    .returning({ status: hosts.status });
  if (!row) return host.status;
  await recordEvent(deps.db, {
    type: "host.reachable",
    message: `host ${host.shortId} is reachable again on engine ${host.engineId} (${status})`,
    userId: host.userId,
    hostId: host.id,
    metadata: { engine_id: host.engineId, status },
  });
  deps.notifyLive({ kind: "host", id: host.id });
  return row.status;
}
