import { eq } from "drizzle-orm";
import { hostPool, type HostPoolRow } from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";
import type { WorkerDeps } from "../deps.js";
import { LABEL_HOST_ID, LABEL_ROLE } from "../hosts/names.js";
import type { ContainerState } from "../runtime/runtime.js";
import { removeMember } from "./members.js";

/** A claim the create task has not taken after this long is looked at by the reconciler. */
const CLAIM_GRACE_MS = 60_000;

/**
 * The reconciler owns pool members as it owns hosts (docs/architecture.md#warm-pool): a ready
 * member whose containers are gone, stopped or started out of order is removed (the keeper
 * warms a replacement); a claim whose host row is gone is cleaned up; a claim whose host has no
 * live task any more (its create was canceled before it ran) is handed to the host for good.
 * `members` were read before `hostIds`, so a claim committed in between is never taken for a lost
 * one. Returns how many members it changed.
 */
export async function reconcilePool(
  deps: WorkerDeps,
  members: HostPoolRow[],
  containers: ContainerState[],
  hostIds: Set<string>,
  busyHostIds: Set<string | null>,
): Promise<number> {
  const now = deps.clock().getTime();
  const seen = new Map<string, { gateway?: ContainerState; host?: ContainerState }>();
  for (const c of containers) {
    const id = c.labels[LABEL_HOST_ID];
    if (!id) continue;
    const o = seen.get(id) ?? {};
    if (c.labels[LABEL_ROLE] === "gateway") o.gateway = c;
    if (c.labels[LABEL_ROLE] === "host") o.host = c;
    seen.set(id, o);
  }
  let changed = 0;
  for (const m of members) {
    let problem: string | null = null;
    if (m.state === "ready") {
      const o = seen.get(m.id) ?? {};
      if (!o.gateway || !o.host) problem = `${!o.gateway ? "gateway" : "host"} container missing`;
      else if (!o.gateway.running || !o.host.running) problem = `${!o.gateway.running ? "gateway" : "host"} container stopped`;
      else if (o.gateway.startedAt && o.host.startedAt && o.host.startedAt < o.gateway.startedAt) problem = "gateway restarted after the host";
      if (problem && !(await removeMember(deps, m.id))) problem = null; // claimed meanwhile: the host's now
    } else if (m.state === "claimed" && m.claimedAt && now - m.claimedAt.getTime() > CLAIM_GRACE_MS) {
      if (!hostIds.has(m.id)) {
        problem = "claimed by a host that no longer exists";
        await removeMember(deps, m.id, { claimed: true });
      } else if (!busyHostIds.has(m.id)) {
        problem = null;
        await deps.db.delete(hostPool).where(eq(hostPool.id, m.id));
        changed++;
      }
    }
    if (!problem) continue;
    changed++;
    await recordEvent(deps.db, {
      type: "reconcile.pool.removed",
      level: "warn",
      message: `removed pool member ${m.shortId}: ${problem}`,
      metadata: { member_id: m.id, observed: problem },
    });
  }
  if (changed) deps.pool?.kick();
  return changed;
}
