import { desc, eq, inArray, type SQL } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import {
  egressIps,
  engineImages,
  hostEgressBindings,
  hosts,
  users,
  type EgressIpRow,
  type EngineImagesRow,
  type HostRow,
  type TaskRow,
} from "../../db/schema/index.js";
import type { HostAdminView, HostUserView, LastTaskView } from "../../views/index.js";
import { isImageOutdated } from "./image-status.js";

export interface HostJoinRow {
  host: typeof hosts.$inferSelect;
  username: string;
  binding: typeof hostEgressBindings.$inferSelect | null;
  egress: typeof egressIps.$inferSelect | null;
  /** The images the host's engine creates hosts from now (null: no worker has published yet). */
  current: EngineImagesRow | null;
}

/**
 * Exactly the columns the host objects render (renderAdminHost, renderUserHost), for the read
 * paths: mapping a row costs per column, and the columns not rendered (encrypted keys and
 * passwords, the egress secrets and proxy configs) were most of a 200-host list's CPU (issue 12).
 * Each nested object starts with a column that is never null in its table, so drizzle turns an
 * absent left join into `null` (it looks at the first column).
 */
export const hostViewColumns = {
  host: {
    id: hosts.id,
    userId: hosts.userId,
    shortId: hosts.shortId,
    status: hosts.status,
    desiredState: hosts.desiredState,
    memoryLimitMb: hosts.memoryLimitMb,
    cpuLimit: hosts.cpuLimit,
    pidsLimit: hosts.pidsLimit,
    diskLimitMb: hosts.diskLimitMb,
    timezone: hosts.timezone,
    image: hosts.image,
    engineId: hosts.engineId,
    imageId: hosts.imageId,
    gatewayImageId: hosts.gatewayImageId,
    idleStopMinutes: hosts.idleStopMinutes,
    idleCpuPercent: hosts.idleCpuPercent,
    alwaysOn: hosts.alwaysOn,
    lastActiveAt: hosts.lastActiveAt,
    idleStoppedAt: hosts.idleStoppedAt,
    sessionRecording: hosts.sessionRecording,
    createdAt: hosts.createdAt,
    updatedAt: hosts.updatedAt,
  },
  username: users.username,
  binding: { id: hostEgressBindings.id },
  egress: {
    id: egressIps.id,
    label: egressIps.label,
    ipAddress: egressIps.ipAddress,
    tunnelType: egressIps.tunnelType,
    status: egressIps.status,
    health: egressIps.health,
  },
  current: { hostImageId: engineImages.hostImageId, gatewayImageId: engineImages.gatewayImageId },
};

/** What the host renderers read: a `HostJoinRow` is one, and so is a row of `hostViewColumns`. */
export interface HostViewRow {
  host: Pick<
    HostRow,
    | "id"
    | "userId"
    | "shortId"
    | "status"
    | "desiredState"
    | "memoryLimitMb"
    | "cpuLimit"
    | "pidsLimit"
    | "diskLimitMb"
    | "timezone"
    | "image"
    | "engineId"
    | "imageId"
    | "gatewayImageId"
    | "idleStopMinutes"
    | "idleCpuPercent"
    | "alwaysOn"
    | "lastActiveAt"
    | "idleStoppedAt"
    | "sessionRecording"
    | "createdAt"
    | "updatedAt"
  >;
  username: string;
  binding: { id: string } | null;
  egress: Pick<EgressIpRow, "id" | "label" | "ipAddress" | "tunnelType" | "status" | "health"> | null;
  current: Pick<EngineImagesRow, "hostImageId" | "gatewayImageId"> | null;
}

/** Hosts with their owner's name and binding, newest first. */
export async function loadHostRows(
  db: DbOrTx,
  where: SQL | undefined,
  page?: { limit: number; offset: number },
): Promise<HostJoinRow[]> {
  const q = db
    .select({ host: hosts, username: users.username, binding: hostEgressBindings, egress: egressIps, current: engineImages })
    .from(hosts)
    .innerJoin(users, eq(users.id, hosts.userId))
    .leftJoin(engineImages, eq(engineImages.engineId, hosts.engineId))
    .leftJoin(hostEgressBindings, eq(hostEgressBindings.hostId, hosts.id))
    .leftJoin(egressIps, eq(egressIps.id, hostEgressBindings.egressIpId))
    .where(where)
    .orderBy(desc(hosts.createdAt), desc(hosts.id));
  return page ? q.limit(page.limit).offset(page.offset) : q;
}

/** Admin host objects (docs/api.md#hosts) for the given owner or host ids. */
export async function loadAdminHosts(db: DbOrTx, filter: { userId?: string; hostIds?: string[] }) {
  const where = filter.userId ? eq(hosts.userId, filter.userId) : inArray(hosts.id, filter.hostIds ?? []);
  return (await loadHostRows(db, where)).map(renderAdminHost);
}

export function renderAdminHost(r: HostViewRow): HostAdminView {
  const h = r.host;
  return {
    id: h.id,
    user_id: h.userId,
    username: r.username,
    short_id: h.shortId,
    status: h.status,
    desired_state: h.desiredState,
    memory_limit_mb: h.memoryLimitMb,
    cpu_limit: Number(h.cpuLimit),
    pids_limit: h.pidsLimit,
    /** null: the engine's HOST_DISK_LIMIT_MB (or an uncapped home created before the cap existed). */
    disk_limit_mb: h.diskLimitMb,
    timezone: h.timezone,
    image: h.image,
    engine_id: h.engineId,
    /** The host runs an older host or gateway image than its engine's current one (README "Upgrading"). */
    image_outdated: isImageOutdated(h, r.current),
    binding_id: r.binding?.id ?? null,
    egress: r.egress
      ? {
          id: r.egress.id,
          label: r.egress.label,
          ip_address: r.egress.ipAddress,
          tunnel_type: r.egress.tunnelType,
          status: r.egress.status,
          health: r.egress.health,
        }
      : null,
    session_recording: h.sessionRecording,
    idle_stop_minutes: h.idleStopMinutes,
    idle_cpu_percent: h.idleCpuPercent,
    always_on: h.alwaysOn,
    last_active_at: h.lastActiveAt?.toISOString() ?? null,
    idle_stopped_at: h.idleStoppedAt?.toISOString() ?? null,
    created_at: h.createdAt.toISOString(),
    updated_at: h.updatedAt.toISOString(),
  };
}

/** The portal's view: no desired_state, image, engine_id, binding_id, egress.id or egress.status (docs/api.md#hosts). */
export function renderUserHost(r: HostViewRow): HostUserView {
  const {
    desired_state: _d,
    image: _i,
    engine_id: _e,
    binding_id: _b,
    session_recording: _r,
    // The idle policy and its state are the admin's (docs/idle.md).
    idle_stop_minutes: _m,
    idle_cpu_percent: _c,
    always_on: _a,
    last_active_at: _l,
    idle_stopped_at: _s,
    egress,
    ...rest
  } = renderAdminHost(r);
  return {
    ...rest,
    egress: egress
      ? { label: egress.label, ip_address: egress.ip_address, tunnel_type: egress.tunnel_type, health: egress.health }
      : null,
  };
}

/** The task columns a host detail's `last_task` renders. */
export type LastTaskRow = Pick<
  TaskRow,
  "id" | "kind" | "status" | "progressPercent" | "progressMessage" | "errorCode" | "errorMessage" | "createdAt" | "finishedAt"
>;

export function renderLastTask(t: LastTaskRow | null | undefined): LastTaskView | null {
  if (!t) return null;
  return {
    id: t.id,
    kind: t.kind,
    status: t.status,
    progress_percent: t.progressPercent,
    progress_message: t.progressMessage,
    error_code: t.errorCode,
    error_message: t.errorMessage,
    created_at: t.createdAt.toISOString(),
    finished_at: t.finishedAt?.toISOString() ?? null,
  };
}
