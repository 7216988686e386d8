import { createHash } from "node:crypto";
import { Transform } from "node:stream";
import { and, eq, ne } from "drizzle-orm";
import { engines, hostPool, hosts, tasks, type EngineRow, type HostRow, type TaskRow } from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";
import { redisKey } from "../../shared/redis.js";
import type { WorkerDeps } from "../deps.js";
import { connectionOf } from "../engine.js";
import { gatewayName, HOME_DIR, homeVolumeName, hostContainerName } from "../hosts/names.js";
import { checkImages, isUpAndHealthy, loadHost, prepareKeys, prepareVolume, removeHome, setHostStatus } from "../hosts/steps.js";
import { createDockerRuntime } from "../runtime/docker/docker-runtime.js";
import type { TaskContext, TaskProcessor } from "../tasks/runner.js";
import { TaskError } from "../tasks/task-error.js";
import type { bringUp, failHost, markRunning } from "./host-flows.js";

/**
 * host.move (docs/api.md#hosts-move): a host leaves its engine for another one, keeping
 * its id, short id, keys, password and egress binding (all rows in Postgres, untouched).
 *
 * The task runs on a worker of the SOURCE engine (it is queued on the host's engine, like every host
 * task); that worker reaches the target engine with a second Runtime built from the target's row,
 * as image sync does (worker/image-sync.ts). Every step is idempotent, and a redelivered job whose
 * host already points at the target resumes at start_target.
 *
 * start_target runs the bring-up of host.start directly on the target's runtime rather than
 * queueing a host.ensure-running for the target: the move holds the host's lock until it ends and
 * a task queued behind it would only run afterwards, so remove_source could not wait for it; and
 * the bring-up is already a set of building blocks taking `deps`, so running them with the target's
 * deps duplicates nothing.
 */

export const MOVE_STEPS = ["stop_source", "copy_home", "switch_engine", "start_target", "remove_source"] as const;

/** What the move needs from host-flows.ts, passed in so the two modules do not import each other. */
export interface MoveParts {
  bringUp: typeof bringUp;
  markRunning: typeof markRunning;
  failHost: typeof failHost;
}

const targetOf = (ctx: TaskContext): string | undefined => (ctx.task.payload as { target_engine_id?: string }).target_engine_id;
/** The engine whose queue carried the task: the host's engine when the move was requested. */
const sourceOf = (ctx: TaskContext): string => ctx.task.engineId ?? ctx.deps.config.ENGINE_ID;

/**
 * The worker's deps, pointed at another engine: its runtime, and its id where a building block
 * records per-engine facts (ensureNetworks publishes the engine's bridges under ENGINE_ID). The
 * pool keeper and the spare test gateway are this worker's own engine's and stay out of it.
 */
export function depsOnEngine(deps: WorkerDeps, row: EngineRow, nets?: EngineNetworks): WorkerDeps {
  const runtime =
    deps.runtimeFor?.(row) ??
    createDockerRuntime({
      connection: connectionOf(row, deps.secrets),
      instance: deps.config.REDIS_PREFIX,
      logs: { maxSize: deps.config.CONTAINER_LOG_MAX_SIZE, maxFiles: deps.config.CONTAINER_LOG_MAX_FILES },
    });
  const { pool: _pool, testSpare: _spare, ...rest } = deps;
  const config = { ...deps.config, ENGINE_ID: row.id };
  if (nets) Object.assign(config, { MGMT_NETWORK: nets.mgmt.name, MGMT_SUBNET: nets.mgmt.subnet, EGRESS_UNDERLAY_NETWORK: nets.underlay.name });
  return { ...rest, runtime, config };
}

/** The management and underlay networks a target engine's own workers use, as they published them (worker/hosts/steps.ts ensureNetworks). */
export interface EngineNetworks {
  mgmt: { name: string; subnet: string };
  underlay: { name: string };
}

/**
 * The target's networks come from its own workers, never from this worker's settings: bringing a
 * host up there with this engine's MGMT_NETWORK and MGMT_SUBNET would create a second network
 * with this engine's subnet on the target (found moving a host from a lab engine to the main one).
 */
async function targetNetworks(deps: WorkerDeps, engineId: string): Promise<EngineNetworks> {
  const raw = await deps.redis.hget(redisKey(deps.config.REDIS_PREFIX, "engine-networks"), engineId);
  const n = raw ? (JSON.parse(raw) as Partial<EngineNetworks>) : {};
  if (!n.mgmt?.name || !n.mgmt.subnet || !n.underlay?.name) {
    // Transient: the target's worker publishes them when it starts; the move is retried.
    throw new TaskError("docker_unavailable", `engine ${engineId} has no worker that published its networks yet`);
  }
  return { mgmt: n.mgmt, underlay: n.underlay };
}

async function loadTarget(ctx: TaskContext): Promise<{ row: EngineRow; deps: WorkerDeps }> {
  const id = targetOf(ctx);
  if (!id) throw new TaskError("internal_error", "the move names no target engine");
  const [row] = await ctx.deps.db.select().from(engines).where(eq(engines.id, id));
  // Not transient: an engine removed meanwhile does not come back by retrying.
  if (!row) throw new TaskError("host_not_found", `target engine ${id} no longer exists`);
  return { row, deps: depsOnEngine(ctx.deps, row, await targetNetworks(ctx.deps, row.id)) };
}

/**
 * Stream the home from the source to a fresh volume of the same name on the target, through this
 * worker (the engines need not reach each other). The worker hashes what it forwards; the target's
 * helper reports the length and sha256 of what it read: both must match.
 */
async function copyHome(ctx: TaskContext, source: WorkerDeps, target: WorkerDeps, host: HostRow): Promise<void | "skipped"> {
  const name = homeVolumeName(host.id);
  // A host whose home was never made (its create never got that far) has nothing to carry: the
  // target's start makes a fresh one.
  if (!(await source.runtime.inspectVolume(name))) return "skipped";
  // The source home's filesystem is mounted (after a reboot of its machine it is not).
  await prepareVolume(source, host);
  // Whatever an earlier attempt left on the target goes first: the copy always starts empty.
  await removeHome(target, host.id, host.diskLimitMb);
  await prepareVolume(target, host);
  const helper = { image: source.config.HOST_IMAGE, mountPath: HOME_DIR };
  const exported = await source.runtime.exportVolume(name, helper);
  const hash = createHash("sha256");
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  exported.stream.on("error", (err: Error) => meter.destroy(err));
  exported.stream.pipe(meter);
  let imported: { sha256: string; bytes: number };
  try {
    [imported] = await Promise.all([target.runtime.importVolume(name, meter, helper), exported.done]);
  } catch (err) {
    // The export's helper must not stay blocked on a pipe nobody reads.
    (exported.stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
    throw err;
  }
  const sent = hash.digest("hex");
  if (imported.bytes !== bytes || imported.sha256 !== sent) {
    throw new TaskError(
      "home_copy_mismatch",
      `the home arrived different from what was sent (${imported.bytes} of ${bytes} bytes, sha256 ${imported.sha256.slice(0, 12)} vs ${sent.slice(0, 12)})`,
    );
  }
  ctx.setResult({ source_engine_id: source.config.ENGINE_ID, target_engine_id: target.config.ENGINE_ID, home_bytes: bytes, home_sha256: sent });
}

export function createMoveProcessor(parts: MoveParts): TaskProcessor {
  return {
    plan: () => [...MOVE_STEPS],
    async run(ctx) {
      const { deps: source, task } = ctx;
      let host = await loadHost(source, task.hostId);
      if (host.status === "deleting") throw new TaskError("host_not_found", "the host is being deleted");
      const sourceId = sourceOf(ctx);
      const { row: targetRow, deps: target } = await loadTarget(ctx);
      if (targetRow.id === sourceId) throw new TaskError("internal_error", "a move needs another engine");
      const grace = source.config.CONTAINER_STOP_GRACE_SECONDS;

      if (host.engineId === targetRow.id) {
        // A redelivered job: the switch is done, the rest resumes.
        await ctx.skip("stop_source", "copy_home", "switch_engine");
      } else {
        if (host.engineId !== sourceId) throw new TaskError("host_not_found", `the host is on engine ${host.engineId}, not ${sourceId}`);
        await ctx.step("stop_source", async () => {
          await setHostStatus(source, host.id, { status: "stopping" });
          await source.revoke({ scope: "host", id: host.id, reason: "host_stopped" });
          await source.runtime.stopContainer(hostContainerName(host.id), grace);
          await source.runtime.stopContainer(gatewayName(host.id), grace);
          await setHostStatus(source, host.id, { status: "stopped" });
        });
        await ctx.step("copy_home", () => copyHome(ctx, source, target, host));
        let rerouted: TaskRow[] = [];
        await ctx.step("switch_engine", async () => {
          await source.db.transaction(async (tx) => {
            const [row] = await tx
              .update(hosts)
              // The management address is the source network's; the start on the target sets its own.
              .set({ engineId: targetRow.id, managementAddress: null, updatedAt: new Date() })
              .where(and(eq(hosts.id, host.id), eq(hosts.engineId, sourceId), ne(hosts.status, "deleting")))
              .returning({ id: hosts.id });
            if (!row) throw new TaskError("host_not_found", "the host was deleted or moved meanwhile");
            // A pool claim not yet taken by its create follows the host (normally none: a host
            // with an unfinished task is not moved).
            await tx.update(hostPool).set({ engineId: targetRow.id }).where(eq(hostPool.id, host.id));
            // Tasks requested while the move ran were queued on the source engine: they belong
            // to the target now (the runner forwards their jobs, worker/tasks/runner.ts).
            rerouted = await tx
              .update(tasks)
              .set({ engineId: targetRow.id })
              .where(and(eq(tasks.hostId, host.id), eq(tasks.status, "pending"), ne(tasks.id, task.id)))
              .returning();
            await recordEvent(tx, {
              type: "host.moved",
              message: `host ${host.shortId} moved from engine ${sourceId} to ${targetRow.id}`,
              userId: host.userId,
              hostId: host.id,
              taskId: task.id,
              metadata: { from_engine_id: sourceId, to_engine_id: targetRow.id },
            });
          });
          source.notifyLive({ kind: "host", id: host.id });
          // Queued on the target now, where they wait behind this move and are woken when it ends.
          for (const t of rerouted) await source.enqueue(t);
        });
      }

      await ctx.step("start_target", async () => {
        host = await loadHost(source, host.id);
        // A stopped host stays stopped on its new engine; its next start brings it up there.
        if (host.desiredState !== "running") return "skipped";
        if (host.status === "running" && (await isUpAndHealthy(target, host.id))) return;
        await setHostStatus(target, host.id, { status: "starting" });
        await checkImages(target);
        host = await prepareKeys(target, host); // kept: the proxy's pin and the host key stay valid
        await prepareVolume(target, host);
        // The parts of host.start's bring-up, run inside this one recorded step.
        const { mgmtAddress } = await parts.bringUp(ctx, host, { deps: target, step: async (_name, fn) => void (await fn()) });
        await parts.markRunning(ctx, host, mgmtAddress, "host.started", target);
      });

      // Only now, with the host running (or at rest) on the target, does the source copy go.
      await ctx.step("remove_source", async () => {
        await source.runtime.removeContainer(hostContainerName(host.id));
        await source.runtime.removeContainer(gatewayName(host.id));
        await removeHome(source, host.id, host.diskLimitMb);
      });
    },

    /**
     * Before the switch the host is still the source's: whatever reached the target goes, and the
     * host fails closed where it is (the reconciler then brings it up again on the source). After
     * the switch a failed start fails it closed on the target (the home there was verified). A
     * failure of remove_source leaves a running host alone: the source reconciler reaps what is
     * left there as orphans.
     */
    async onFailure(ctx, err) {
      const { deps: source, task } = ctx;
      if (!task.hostId) return;
      const [host] = await source.db.select().from(hosts).where(eq(hosts.id, task.hostId));
      if (!host || host.status === "deleting") return;
      const target = await loadTarget(ctx).catch(() => null);
      if (host.engineId === sourceOf(ctx)) {
        if (target) {
          await removeHome(target.deps, host.id, host.diskLimitMb).catch((e: unknown) => ctx.log.warn({ err: e }, "could not remove the partial home on the target"));
        }
        await parts.failHost(ctx, err, source);
      } else if (target && host.engineId === target.row.id && host.status !== "running") {
        await parts.failHost(ctx, err, target.deps);
      }
    },
  };
}
