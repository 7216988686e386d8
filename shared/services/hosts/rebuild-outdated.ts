import { and, eq, inArray, notExists } from "drizzle-orm";
import { hosts, tasks } from "../../db/schema/index.js";
import { isServiceError } from "../../errors.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { imageOutdatedSql } from "./image-status.js";
import { requestHostLifecycle } from "./lifecycle.js";
import { loadHostRows } from "./render.js";

export interface OutdatedRebuild {
  host_id: string;
  short_id: string;
  username: string;
  status: string;
  /** The host.rebuild task (null on a dry run). */
  task_id: string | null;
  /** A host the owner had stopped is stopped again after its rebuild: that host.stop task. */
  stop_task_id: string | null;
}

export interface OutdatedSkip {
  host_id: string;
  short_id: string;
  code: string;
  message: string;
}

/**
 * `POST /v1/admin/hosts/rebuild-outdated` and `admin rebuild-outdated` (README "Upgrading"): one
 * preserve-home rebuild per running or stopped host whose image is outdated, each through
 * requestHostLifecycle like a single rebuild (per-host task cap, dedupe, events, enqueue).
 *
 * A host that already has a rebuild pending or running is left out (asking twice does not queue
 * a second round). A host whose owner wanted it stopped gets a host.stop after its rebuild, so
 * the upgrade does not leave it running. A host the per-host rules refuse (owner disabled or
 * expired, too many tasks waiting) is reported under `skipped`; the others go ahead.
 */
export async function rebuildOutdatedHosts({ ctx, dryRun = false }: { ctx: ServiceContext; dryRun?: boolean }) {
  const rebuildLive = ctx.db
    .select({ one: tasks.id })
    .from(tasks)
    .where(and(eq(tasks.hostId, hosts.id), eq(tasks.kind, "host.rebuild"), inArray(tasks.status, ["pending", "running"])));
  const rows = await loadHostRows(ctx.db, and(inArray(hosts.status, ["running", "stopped"]), imageOutdatedSql(), notExists(rebuildLive)));
  const requested: OutdatedRebuild[] = [];
  const skipped: OutdatedSkip[] = [];
  for (const { host, username } of rows) {
    const item = { host_id: host.id, short_id: host.shortId, username, status: host.status, task_id: null, stop_task_id: null };
    if (dryRun) {
      requested.push(item);
      continue;
    }
    const keepStopped = host.desiredState === "stopped";
    const refused = (err: unknown, prefix = "") => {
      if (!isServiceError(err)) throw err;
      skipped.push({ host_id: host.id, short_id: host.shortId, code: err.code, message: `${prefix}${err.message}` });
    };
    let taskId: string;
    try {
      taskId = (await requestHostLifecycle({ ctx, hostId: host.id, op: "rebuild", mode: "preserve-home" })).task_id;
    } catch (err) {
      refused(err);
      continue;
    }
    let stopTaskId: string | null = null;
    if (keepStopped) {
      try {
        stopTaskId = (await requestHostLifecycle({ ctx, hostId: host.id, op: "stop" })).task_id;
      } catch (err) {
        refused(err, "rebuild requested, but the stop after it was not: ");
      }
    }
    requested.push({ ...item, task_id: taskId, stop_task_id: stopTaskId });
  }
  if (!dryRun && (requested.length || skipped.length)) {
    await recordEvent(ctx.db, {
      type: "host.rebuild_outdated.requested",
      message: `rebuild of ${requested.length} outdated host(s) requested${skipped.length ? `, ${skipped.length} skipped` : ""}`,
      actorId: ctx.actor?.id,
      metadata: { requested: requested.length, skipped: skipped.length },
    });
  }
  return { dry_run: dryRun, requested, skipped };
}
