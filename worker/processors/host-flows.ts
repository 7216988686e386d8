import { and, eq } from "drizzle-orm";
import {
  hostEgressBindings,
  hostPool,
  hosts,
  retainedVolumes,
  type HostPoolRow,
  type HostRow,
  type TaskRow,
} from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";

import { applyHostEgress, verifyHostEgress } from "../network/host-egress.js";
import { egressTestProcessor } from "../network/egress-test.js";
import {
  assertEgressBindingIfRequired,
  checkImages,
  ensureNetworks,
  isUpAndHealthy,
  loadHost,
  prepareKeys,
  prepareVolume,
  removeHome,
  removeUserIfLastHostGone,
  setHostStatus,
  startGateway,
  startHostContainer,
  stopContainers,
  syncKeys,
  waitSsh,
} from "../hosts/steps.js";
import { gatewayName, homeVolumeName, hostContainerName } from "../hosts/names.js";
import { containerImageIds } from "../images.js";
import { applyClaimEgress, blockedPlan, takeClaimedMember } from "../pool/personalise.js";
import type { WorkerDeps } from "../deps.js";
import { concurrently, type TaskContext, type TaskProcessor } from "../tasks/runner.js";
import { createMoveProcessor } from "./host-move.js";
import { TaskError } from "../tasks/task-error.js";

/**
 * The host task kinds (docs/architecture.md#host-flows). Each flow is a list of idempotent steps: a redelivered
 * job simply runs them again and finds most of the work already done.
 */

const BRING_UP = ["start_gateway", "start_host", "verify_egress", "wait_ssh", "sync_keys"] as const;

/**
 * How a bring-up runs: on the task's own engine with each part a recorded step, or (a host move's
 * start_target) on another engine's deps, inside one recorded step of the caller.
 */
export interface BringUpOn {
  deps: WorkerDeps;
  step: TaskContext["step"];
}

export async function bringUp(ctx: TaskContext, host: HostRow, on: BringUpOn = { deps: ctx.deps, step: ctx.step }): Promise<{ mgmtAddress: string }> {
  const { deps, step } = on;
  let gateway!: Awaited<ReturnType<typeof startGateway>>;
  await step("start_gateway", async () => {
    await assertEgressBindingIfRequired(deps, host);
    gateway = await startGateway(deps, host);
  });
  await step("start_host", () => startHostContainer(deps, host, gateway.state));
  // docs/egress.md#verification: after the host container is up; a failure fails the task closed
  // (onFailure). sshd's readiness and the keys (written with an exec in the running container)
  // depend neither on it nor on each other: the three run at once, and the host is `running`
  // only when all succeeded.
  await concurrently(
    step("verify_egress", () => verifyHostEgress(deps, { host, taskId: ctx.task.id, plan: gateway.plan, net: gateway.net })),
    step("wait_ssh", () => waitSsh(deps, host, gateway.mgmtAddress)),
    step("sync_keys", () => syncKeysStep(ctx, host, {}, deps)),
  );
  return { mgmtAddress: gateway.mgmtAddress };
}

async function syncKeysStep(ctx: TaskContext, host: HostRow, opts: { freshHome?: boolean } = {}, deps: WorkerDeps = ctx.deps): Promise<void | "skipped"> {
  try {
    await syncKeys(deps, host, opts);
  } catch (err) {
    // A tenant who filled their own home still gets their host back (the proxy's key is not in
    // the home); the keys sync again once they free space. Only warned, like host.sync-keys.
    if (!(err instanceof TaskError) || err.code !== "host_disk_full") throw err;
    await recordEvent(deps.db, {
      type: "host.keys.sync_failed",
      level: "warn",
      message: "SSH key sync failed: the host's home is full",
      userId: host.userId,
      hostId: host.id,
      taskId: ctx.task.id,
      metadata: { error_code: err.code },
    });
    return "skipped";
  }
}

/**
 * The fast path of host.create (docs/architecture.md#warm-pool): the host is a claimed pool
 * member, already running with its keys, home and blocked gateway. What is left is the tenant's:
 * the egress (applied live and verified, as a start with a binding would), sshd confirmed with the
 * pinned key (one probe), the user's keys. The SSH password is never in the container (the proxy
 * checks it), and the limits and timezone are the member's shape, which the claim matched.
 */
async function personalise(ctx: TaskContext, host: HostRow, member: HostPoolRow): Promise<{ mgmtAddress: string }> {
  const { deps } = ctx;
  const mgmtAddress = host.managementAddress!;
  await ctx.skip("check_images", "prepare_keys", "prepare_volume");
  let applied: Awaited<ReturnType<typeof applyClaimEgress>> = null;
  await ctx.step("start_gateway", async () => {
    await assertEgressBindingIfRequired(deps, host);
    applied = await applyClaimEgress(deps, host, ctx.task.id);
    if (!applied) return "skipped";
  });
  // Both containers were found running, the host after its gateway (takeClaimedMember).
  await ctx.skip("start_host");
  // The verification, sshd's readiness and the user's keys run at once, as in bringUp.
  await concurrently(
    ctx.step("verify_egress", async () => {
      if (applied) {
        const { probe, ...target } = applied;
        try {
          return await verifyHostEgress(deps, { host, taskId: ctx.task.id, ...target }, { probe });
        } finally {
          await probe.then((p) => p.remove()).catch(() => {});
        }
      }
      // Still blocked: proven on this gateway when the member was warmed, unless it was warmed
      // before the checks were configured.
      if (!deps.config.EGRESS_CHECKS || member.isolationVerifiedAt) return "skipped";
      return verifyHostEgress(deps, { host, taskId: ctx.task.id, ...(await blockedPlan(deps, host)) });
    }),
    ctx.step("wait_ssh", () => waitSsh(deps, host, mgmtAddress)),
    // No tenant has had this home yet: nothing in it to read first.
    ctx.step("sync_keys", () => syncKeysStep(ctx, host, { freshHome: true })),
  );
  return { mgmtAddress };
}

export async function markRunning(
  ctx: TaskContext,
  host: HostRow,
  mgmtAddress: string,
  event: "host.started" | "host.rebuilt",
  deps: WorkerDeps = ctx.deps,
) {
  const { task } = ctx;
  const changed = await setHostStatus(deps, host.id, {
    status: "running",
    managementAddress: mgmtAddress,
    image: deps.config.HOST_IMAGE,
    // What the containers really run: a start reuses an existing container, so its image may be
    // older than HOST_IMAGE now (README "Upgrading").
    ...(await containerImageIds(deps, { host: hostContainerName(host.id), gateway: gatewayName(host.id) })),
    repairAttempts: 0,
    repairNotBefore: null,
    // The idle window starts now, and a stop for idleness is over (docs/idle.md).
    lastActiveAt: new Date(),
    idleStoppedAt: null,
  });
  if (!changed) return;
  const wokenBy = (task.payload as { woken_by?: unknown } | null)?.woken_by;
  if (typeof wokenBy === "string") {
    // docs/idle.md#wake: what woke it, and how long from the arrival to a running host.
    await recordEvent(deps.db, {
      type: "host.woken",
      message: `host ${host.shortId} woken by ${wokenBy}`,
      userId: host.userId,
      hostId: host.id,
      taskId: task.id,
      metadata: { via: wokenBy, duration_ms: Date.now() - task.createdAt.getTime() },
    });
  }
  await recordEvent(deps.db, {
    type: event,
    message: `host ${host.shortId} ${event === "host.rebuilt" ? "rebuilt" : "started"}`,
    userId: host.userId,
    hostId: host.id,
    taskId: task.id,
    metadata: { duration_ms: task.startedAt ? Date.now() - task.startedAt.getTime() : null },
  });
}

/** Start-type failures fail closed: containers stopped, host `failed` (docs/architecture.md#host-flows Outcomes). */
export async function failHost(ctx: TaskContext, err: TaskError, deps: WorkerDeps = ctx.deps) {
  const { task } = ctx;
  if (!task.hostId) return;
  const [host] = await deps.db.select().from(hosts).where(eq(hosts.id, task.hostId));
  if (!host || host.status === "deleting") return;
  await stopContainers(deps, host.id).catch((e: unknown) => ctx.log.warn({ err: e }, "could not stop containers"));
  await setHostStatus(deps, host.id, { status: "failed" });
  await recordEvent(deps.db, {
    type: "host.failed",
    level: "error",
    message: `host ${host.shortId} failed: ${err.code}`,
    userId: host.userId,
    hostId: host.id,
    taskId: task.id,
    metadata: { error_code: err.code, error_message: err.message },
  });
}

/** A canceled start-type task leaves the host stopped, with nothing running (docs/architecture.md#tasks). */
async function cancelHost(ctx: TaskContext) {
  const { deps, task } = ctx;
  if (!task.hostId) return;
  const [host] = await deps.db.select().from(hosts).where(eq(hosts.id, task.hostId));
  if (!host || host.status === "deleting") return;
  await stopContainers(deps, host.id);
  await setHostStatus(deps, host.id, { status: "stopped", desiredState: "stopped" });
}

/** host.start and host.ensure-running share one flow (docs/architecture.md#host-flows). */
const start: TaskProcessor = {
  plan: () => ["check_images", ...BRING_UP],
  async run(ctx) {
    const { deps, task } = ctx;
    let host = await loadHost(deps, task.hostId);
    if (host.status === "deleting") throw new TaskError("host_not_found", "the host is being deleted");
    // "No-op if running": both containers up and the host started after its gateway.
    if (host.status === "running" && (await isUpAndHealthy(deps, host.id))) {
      await ctx.skip("check_images", ...BRING_UP);
      return;
    }
    await setHostStatus(deps, host.id, { status: "starting" });
    await ctx.step("check_images", () => checkImages(deps));
    host = await prepareKeys(deps, host); // a host created before its keys existed (canceled create)
    await prepareVolume(deps, host);
    const { mgmtAddress } = await bringUp(ctx, host);
    await markRunning(ctx, host, mgmtAddress, "host.started");
  },
  onFailure: failHost,
  onCanceled: cancelHost,
};

const create: TaskProcessor = {
  plan: () => ["check_images", "prepare_keys", "prepare_volume", ...BRING_UP],
  async run(ctx) {
    const { deps, task } = ctx;
    let host = await loadHost(deps, task.hostId);
    if (host.status === "deleting") throw new TaskError("host_not_found", "the host is being deleted");
    await setHostStatus(deps, host.id, { status: "creating" });
    const member = await takeClaimedMember(deps, host);
    if (member) {
      const { mgmtAddress } = await personalise(ctx, host, member);
      await markRunning(ctx, host, mgmtAddress, "host.started");
      // A member left the pool: the keeper warms its replacement (after this host is up).
      deps.pool?.kick();
      return;
    }
    await ctx.step("check_images", () => checkImages(deps));
    await ctx.step("prepare_keys", async () => {
      host = await prepareKeys(deps, host);
    });
    await ctx.step("prepare_volume", () => prepareVolume(deps, host));
    const { mgmtAddress } = await bringUp(ctx, host);
    await markRunning(ctx, host, mgmtAddress, "host.started");
  },
  onFailure: failHost,
  onCanceled: cancelHost,
};

const rebuild: TaskProcessor = {
  plan: () => ["check_images", "remove_containers", "wipe_home", ...BRING_UP],
  async run(ctx) {
    const { deps, task } = ctx;
    let host = await loadHost(deps, task.hostId);
    if (host.status === "deleting") throw new TaskError("host_not_found", "the host is being deleted");
    await setHostStatus(deps, host.id, { status: "rebuilding" });
    await deps.revoke({ scope: "host", id: host.id, reason: "host_rebuilt" });
    await ctx.step("check_images", () => checkImages(deps));
    await ctx.step("remove_containers", async () => {
      await deps.runtime.removeContainer(hostContainerName(host.id));
      await deps.runtime.removeContainer(gatewayName(host.id));
    });
    const wipe = (task.payload as { mode?: string }).mode === "wipe-home";
    await ctx.step("wipe_home", async () => {
      if (!wipe) return "skipped";
      // The filesystem goes too: removing a bind volume leaves its directory's data in place.
      await removeHome(deps, host.id, host.diskLimitMb);
    });
    // Keys are kept across rebuilds, so the proxy's pin stays valid (docs/architecture.md#host-flows).
    host = await prepareKeys(deps, host);
    await prepareVolume(deps, host);
    const { mgmtAddress } = await bringUp(ctx, host);
    await markRunning(ctx, host, mgmtAddress, "host.rebuilt");
  },
  onFailure: failHost,
  onCanceled: cancelHost,
};

const STOP_REASON: Record<string, string> = {
  "system:user-disabled": "user_disabled",
  "system:expiry": "user_expired",
  "system:reconcile": "reconcile",
  "system:idle": "idle",
};

const stop: TaskProcessor = {
  plan: () => ["stop_host", "stop_gateway"],
  async run(ctx) {
    const { deps, task } = ctx;
    const host = await loadHost(deps, task.hostId);
    // A no-op only when *neither* container runs. Checking the host container alone let a stopped
    // host keep a running gateway (started by hand, or left over): the reconciler saw "desired
    // stopped but something running", enqueued host.stop, and this skipped it — forever.
    const up = async (name: string) => (await deps.runtime.inspectContainer(name))?.running === true;
    if (host.status === "stopped" && !(await up(hostContainerName(host.id))) && !(await up(gatewayName(host.id)))) {
      await ctx.skip("stop_host", "stop_gateway");
      return;
    }
    await setHostStatus(deps, host.id, { status: "stopping" });
    await deps.revoke({ scope: "host", id: host.id, reason: "host_stopped" });
    const grace = deps.config.CONTAINER_STOP_GRACE_SECONDS;
    await ctx.step("stop_host", () => deps.runtime.stopContainer(hostContainerName(host.id), grace));
    await ctx.step("stop_gateway", () => deps.runtime.stopContainer(gatewayName(host.id), grace));
    // A success resets the reconciler's repair backoff (docs/architecture.md#schedulers), a stop as much as a start: else
    // each reconcile-driven stop adds to repair_attempts for good, and after MAX_REPAIR_ATTEMPTS
    // of them over the host's life the reconciler never repairs it again.
    if (await setHostStatus(deps, host.id, { status: "stopped", repairAttempts: 0, repairNotBefore: null })) {
      await recordEvent(deps.db, {
        type: "host.stopped",
        message: `host ${host.shortId} stopped`,
        userId: host.userId,
        hostId: host.id,
        taskId: task.id,
        metadata: { reason: STOP_REASON[task.requestedBy] ?? "requested" },
      });
    }
  },
  async onFailure(ctx, err) {
    await failHost(ctx, err);
  },
};

const del: TaskProcessor = {
  plan: () => ["stop_host", "remove_host", "remove_gateway", "remove_volume", "remove_rows"],
  async run(ctx) {
    const { deps, task } = ctx;
    const [host] = task.hostId ? await deps.db.select().from(hosts).where(eq(hosts.id, task.hostId)) : [];
    const hostId = task.hostId!;
    const keepHome = (task.payload as { keep_home?: boolean }).keep_home === true;
    const grace = deps.config.CONTAINER_STOP_GRACE_SECONDS;
    await ctx.step("stop_host", () => deps.runtime.stopContainer(hostContainerName(hostId), grace));
    await ctx.step("remove_host", () => deps.runtime.removeContainer(hostContainerName(hostId)));
    await ctx.step("remove_gateway", () => deps.runtime.removeContainer(gatewayName(hostId)));
    await ctx.step("remove_volume", async () => {
      if (keepHome) {
        // Recorded as retained: the reconciler never reaps it as an orphan.
        await deps.db
          .insert(retainedVolumes)
          .values({ volumeName: homeVolumeName(hostId), hostId, userId: host?.userId ?? hostId })
          .onConflictDoNothing();
        return "skipped";
      }
      await removeHome(deps, hostId, host?.diskLimitMb);
    });
    await ctx.step("remove_rows", async () => {
      await deps.db.transaction(async (tx) => {
        await tx.delete(hostEgressBindings).where(eq(hostEgressBindings.hostId, hostId));
        // A host deleted before its create task took its pool member: the claim goes with it.
        await tx.delete(hostPool).where(eq(hostPool.id, hostId));
        await tx.delete(hosts).where(and(eq(hosts.id, hostId)));
        if (host) {
          await recordEvent(tx, {
            type: "host.deleted",
            level: "warn",
            message: `host ${host.shortId} deleted`,
            userId: host.userId,
            hostId,
            taskId: task.id,
            metadata: { keep_home: keepHome },
          });
        }
      });
      if (host) await removeUserIfLastHostGone(deps, host.userId);
    });
  },
};

const syncKeysTask: TaskProcessor = {
  plan: () => ["sync_keys"],
  async run(ctx) {
    const { deps, task } = ctx;
    const host = await loadHost(deps, task.hostId);
    if (host.status !== "running") {
      await ctx.skip("sync_keys");
      return;
    }
    await ctx.step("sync_keys", async () => {
      const n = await syncKeys(deps, host);
      await recordEvent(deps.db, {
        type: "host.keys.synced",
        message: `SSH keys synced to host ${host.shortId}`,
        userId: host.userId,
        hostId: host.id,
        taskId: task.id,
        metadata: { keys: n },
      });
    });
  },
  // A failed key sync only warns; the host keeps running (docs/architecture.md#host-status).
  async onFailure(ctx, err) {
    await recordEvent(ctx.deps.db, {
      type: "host.keys.sync_failed",
      level: "warn",
      message: "SSH key sync failed",
      hostId: ctx.task.hostId,
      taskId: ctx.task.id,
      metadata: { error_code: err.code },
    });
  },
};

/**
 * host.apply-egress (docs/architecture.md#host-flows, docs/egress.md#gateway): the host's current binding goes live in its gateway without a
 * restart — kill switch of the new mode first, then routing, then the engine — and is verified.
 * A host that is not running is a no-op: its next start applies the binding. A failure fails
 * closed (host and gateway stopped, host `failed`).
 */
const applyEgress: TaskProcessor = {
  plan: () => ["write_config", "reload_gateway", "verify_egress"],
  async run(ctx) {
    const { deps, task } = ctx;
    const host = await loadHost(deps, task.hostId);
    if (host.status !== "running") {
      await ctx.skip("write_config", "reload_gateway", "verify_egress");
      return;
    }
    const net = await ensureNetworks(deps);
    const plan = await applyHostEgress(deps, host, net, (name, fn) => ctx.step(name, fn));
    await ctx.step("verify_egress", () => verifyHostEgress(deps, { host, taskId: task.id, plan, net }));
    await recordEvent(deps.db, {
      type: "host.egress.applied",
      message: `egress of host ${host.shortId} applied (${plan.config.mode})`,
      userId: host.userId,
      hostId: host.id,
      taskId: task.id,
      metadata: { mode: plan.config.mode, egress_ip_id: plan.boundEgressId },
    });
  },
  onFailure: failHost,
};

export const taskProcessors: Record<TaskRow["kind"], TaskProcessor> = {
  "host.create": create,
  "host.start": start,
  "host.ensure-running": start,
  "host.rebuild": rebuild,
  "host.stop": stop,
  "host.delete": del,
  "host.sync-keys": syncKeysTask,
  "host.apply-egress": applyEgress,
  "host.move": createMoveProcessor({ bringUp, markRunning, failHost }),
  "egress.test": egressTestProcessor,
};

