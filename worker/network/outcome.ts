import { and, eq, ne } from "drizzle-orm";
import { egressIps, type HostRow } from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";
import type { WorkerDeps } from "../deps.js";
import type { TaskErrorCode } from "../tasks/task-error.js";

/**
 * Side effects of verifications and tests on the egress row and the audit trail ( * docs/api.md#egress-test-api, docs/egress.md#verification). The declared `ip_address` is never written here.
 */

type Health = "passing" | "failing";

/** Set `health`; `egress.health.changed` ({from, to}) when it changed. */
export async function setEgressHealth(
  deps: Pick<WorkerDeps, "db">,
  egressId: string,
  to: Health,
  ctx: { taskId: string | null; hostId?: string | null; userId?: string | null },
): Promise<void> {
  await deps.db.transaction(async (tx) => {
    const [before] = await tx.select({ health: egressIps.health, label: egressIps.label }).from(egressIps).where(eq(egressIps.id, egressId)).for("update");
    if (!before || before.health === to) return;
    await tx
      .update(egressIps)
      .set({ health: to, updatedAt: new Date() })
      .where(and(eq(egressIps.id, egressId), ne(egressIps.health, to)));
    await recordEvent(tx, {
      type: "egress.health.changed",
      level: to === "failing" ? "warn" : "info",
      message: `egress ${before.label} is ${to}`,
      hostId: ctx.hostId ?? null,
      userId: ctx.userId ?? null,
      taskId: ctx.taskId,
      metadata: { egress_ip_id: egressId, from: before.health, to },
    });
  });
}

/** Codes that say something about the egress itself (its health turns `failing`). */
export const EGRESS_CODES: ReadonlySet<TaskErrorCode> = new Set(["tunnel_setup_failed", "egress_unreachable", "egress_ip_mismatch", "dns_leak"]);

export interface VerifyEventInput {
  host: Pick<HostRow, "id" | "userId" | "shortId">;
  taskId: string;
  mode: string;
  egressId: string | null;
  /** The checks with expected and observed values (and `resolvers_seen`), or the isolation checks. */
  checks: unknown;
}

export async function recordVerifyPassed(deps: Pick<WorkerDeps, "db" | "metrics">, v: VerifyEventInput): Promise<void> {
  deps.metrics.egressVerifications.inc({ kind: "verify", mode: v.mode, result: "passed" });
  await recordEvent(deps.db, {
    type: "egress.verify.passed",
    message: `egress of host ${v.host.shortId} verified (${v.mode})`,
    userId: v.host.userId,
    hostId: v.host.id,
    taskId: v.taskId,
    metadata: { mode: v.mode, egress_ip_id: v.egressId, checks: v.checks },
  });
  if (v.egressId && (v.mode === "wireguard" || v.mode === "proxy")) {
    await setEgressHealth(deps, v.egressId, "passing", { taskId: v.taskId, hostId: v.host.id, userId: v.host.userId });
  }
}

export async function recordVerifyFailed(
  deps: Pick<WorkerDeps, "db" | "metrics">,
  v: VerifyEventInput & { errorCode: TaskErrorCode; message: string },
): Promise<void> {
  deps.metrics.egressVerifications.inc({ kind: "verify", mode: v.mode, result: v.errorCode });
  await recordEvent(deps.db, {
    type: "egress.verify.failed",
    level: "error",
    message: `egress of host ${v.host.shortId} failed verification: ${v.errorCode}`,
    userId: v.host.userId,
    hostId: v.host.id,
    taskId: v.taskId,
    metadata: { mode: v.mode, egress_ip_id: v.egressId, error_code: v.errorCode, checks: v.checks },
  });
  if (v.egressId && (v.mode === "wireguard" || v.mode === "proxy") && EGRESS_CODES.has(v.errorCode)) {
    await setEgressHealth(deps, v.egressId, "failing", { taskId: v.taskId, hostId: v.host.id, userId: v.host.userId });
  }
}
