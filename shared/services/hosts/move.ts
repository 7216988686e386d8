import { and, eq, inArray, ne, sql } from "drizzle-orm";
import type { Tx } from "../../db/client.js";
import { engines, hosts, tasks, type HostRow, type TaskRow } from "../../db/schema/index.js";
import { Conflict, NotFound, ServiceError } from "../../errors.js";
import type { ServiceContext } from "../context.js";
import { ENGINE_DEAD_AFTER_DEFAULT_SECONDS, loadEngines, rankEngines } from "../engines/placement.js";
import { isEngineId } from "../engines/schemas.js";
import { recordEvent } from "../events.js";
import { insertTask } from "../tasks/create.js";
import { assertNotDeleting, getHost } from "./lookup.js";

/**
 * Moving a host to another engine (docs/api.md#hosts-move): one `host.move` task, run by a worker of
 * the host's current engine (worker/processors/host-move.ts). The target is checked here with the
 * placement rules (docs/engines.md#placement) so an impossible move is refused before any task
 * exists.
 */

/** Statuses a move can start from: the home is at rest or can be stopped. */
const MOVABLE: ReadonlySet<HostRow["status"]> = new Set(["running", "stopped", "failed"]);

/**
 * The active engines other than `exclude` that a host of this shape fits on, best first (spread),
 * live ones first. The schedulable rows are locked in id order as placeHost locks them, so moves
 * and creates place one after another. An engine's load counts its hosts and the hosts with an
 * unfinished move to it: a drain's moves, placed one after another in one transaction, and moves
 * still copying do not overfill it.
 */
async function rankMoveTargets(
  tx: Tx,
  host: HostRow,
  deadAfterSeconds: number,
): Promise<{ ranked: string[]; live: string[] }> {
  const locked = await tx.execute<{ id: string }>(sql`select id from engines where state = 'active' order by id for update`);
  const ids = [...locked].map((r) => r.id).filter((id) => id !== host.engineId);
  if (!ids.length) return { ranked: [], live: [] };
  const loads = await loadEngines(tx, ids, deadAfterSeconds);
  const ranked = rankEngines(loads, { memoryMb: host.memoryLimitMb, cpus: host.cpuLimit, strategy: "spread" });
  const live = new Set(loads.filter((e) => e.live).map((e) => e.id));
  return { ranked, live: ranked.filter((id) => live.has(id)) };
}

/**
 * Check that the host can move (and to where) and insert its `host.move` task, in the caller's
 * transaction, with the host row locked. Throws the 404/409 the route answers.
 */
export async function planHostMove(
  tx: Tx,
  ctx: Pick<ServiceContext, "engineDeadAfterSeconds" | "requestId"> & { actorId: string | null; requestedBy: string },
  host: HostRow,
  targetId: string | undefined,
): Promise<{ task: TaskRow; targetEngineId: string }> {
  assertNotDeleting(host);
  if (targetId !== undefined) {
    if (!isEngineId(targetId)) throw NotFound("engine_not_found", "engine not found");
    const [row] = await tx.select({ id: engines.id }).from(engines).where(eq(engines.id, targetId));
    if (!row) throw NotFound("engine_not_found", "engine not found");
    if (targetId === host.engineId) throw Conflict("same_engine", `the host is already on engine ${targetId}`);
  }
  // One operation at a time: a move stops the host and carries its home, which no other task of
  // the host may touch meanwhile, and a task queued behind it would be queued on the old engine.
  const [busy] = await tx
    .select({ id: tasks.id, kind: tasks.kind })
    .from(tasks)
    .where(and(eq(tasks.hostId, host.id), inArray(tasks.status, ["pending", "running"])))
    .limit(1);
  if (busy) throw Conflict("host_busy", `the host has an unfinished ${busy.kind} task (${busy.id}); move it once that has ended`);
  if (!MOVABLE.has(host.status)) throw Conflict("host_busy", `the host is ${host.status}; it can be moved when running, stopped or failed`);
  const { ranked, live } = await rankMoveTargets(tx, host, ctx.engineDeadAfterSeconds ?? ENGINE_DEAD_AFTER_DEFAULT_SECONDS);
  const want = `${host.memoryLimitMb} MiB and ${host.cpuLimit} CPUs`;
  let target: string | undefined;
  if (targetId !== undefined) {
    if (!ranked.includes(targetId)) {
      const [e] = await tx.select({ state: engines.state }).from(engines).where(eq(engines.id, targetId));
      throw Conflict(
        "no_capacity",
        e?.state !== "active" ? `engine ${targetId} is ${e?.state ?? "gone"}: it takes no hosts` : `engine ${targetId} has no room for ${want}`,
      );
    }
    target = targetId;
  } else {
    // A live engine first: the copy needs the target to answer.
    target = live[0] ?? ranked[0];
    if (!target) throw Conflict("no_capacity", `no other schedulable engine has room for ${want}`);
  }
  const task = await insertTask(tx, {
    kind: "host.move",
    hostId: host.id,
    requestedBy: ctx.requestedBy,
    origin: ctx.requestedBy.startsWith("system:") ? "system" : "api",
    payload: { target_engine_id: target },
    userId: host.userId,
    requestId: ctx.requestId ?? null,
  });
  await recordEvent(tx, {
    type: "host.move.requested",
    message: `move of host ${host.shortId} from engine ${host.engineId} to ${target} requested`,
    actorId: ctx.actorId,
    userId: host.userId,
    hostId: host.id,
    taskId: task.id,
    metadata: { from_engine_id: host.engineId, to_engine_id: target },
  });
  return { task, targetEngineId: target };
}

/** `POST /v1/admin/hosts/{hostID}/move` `{engine_id?}` → 202 `{task_id, target_engine_id}`. */
export async function requestHostMove({ ctx, hostId, engineId }: { ctx: ServiceContext; hostId: string; engineId?: string }) {
  const { task, targetEngineId } = await ctx.db.transaction(async (tx) => {
    const host = await getHost(tx, hostId, { forUpdate: true });
    return planHostMove(tx, { ...ctx, actorId: ctx.actor?.id ?? null, requestedBy: ctx.actor!.id }, host, engineId);
  });
  await ctx.enqueue(task);
  return { task_id: task.id, target_engine_id: targetEngineId };
}

export interface DrainMoves {
  requested: { host_id: string; short_id: string; task_id: string; target_engine_id: string }[];
  skipped: { host_id: string; short_id: string; code: string; message: string }[];
}

/**
 * A drain's moves (shared/services/engines/manage.ts), in the drain's transaction after the engine
 * turned `draining`: one `host.move` per host of the engine, each placed with the rules above; a
 * host that cannot move (busy, no room anywhere) is reported and stays. Returns the tasks to enqueue
 * after commit.
 */
export async function planDrainMoves(
  tx: Tx,
  ctx: ServiceContext,
  engineId: string,
): Promise<{ moves: DrainMoves; tasks: TaskRow[] }> {
  const onEngine = await tx
    .select()
    .from(hosts)
    .where(and(eq(hosts.engineId, engineId), ne(hosts.status, "deleting")))
    .orderBy(hosts.createdAt, hosts.id)
    .for("update");
  const moves: DrainMoves = { requested: [], skipped: [] };
  const created: TaskRow[] = [];
  for (const host of onEngine) {
    // A savepoint per host: one refused move must not undo the ones before it.
    try {
      const { task, targetEngineId } = await tx.transaction((sp) =>
        planHostMove(sp, { ...ctx, actorId: ctx.actor?.id ?? null, requestedBy: ctx.actor?.id ?? "system:drain" }, host, undefined),
      );
      created.push(task);
      moves.requested.push({ host_id: host.id, short_id: host.shortId, task_id: task.id, target_engine_id: targetEngineId });
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      moves.skipped.push({ host_id: host.id, short_id: host.shortId, code: err.code, message: err.message });
    }
  }
  return { moves, tasks: created };
}
