import { and, desc, eq, inArray } from "drizzle-orm";
import { egressIps, tasks, type TaskRow } from "../../db/schema/index.js";
import { NotFound, Unavailable } from "../../errors.js";
import { isUuid } from "../../validation.js";
import type { ServiceContext } from "../context.js";
import { insertTask } from "../tasks/create.js";
import { assertEgressChecksConfigured } from "./checks.js";

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

/**
 * `POST /v1/admin/egress-ips/{ipID}/test` (docs/api.md#egress-test-api): join the egress's pending or
 * running test, or start one; then either answer at once (`async`) or wait for the verdict up to
 * `waitSeconds`. A disabled egress can be tested.
 */
export async function requestEgressTest({
  ctx,
  egressId,
  waitSeconds,
  async: asyncMode,
  pollMs = 250,
}: {
  ctx: ServiceContext;
  egressId: string;
  waitSeconds: number;
  async: boolean;
  pollMs?: number;
}): Promise<{ status: 200; body: unknown } | { status: 202; body: { task_id: string } }> {
  if (!isUuid(egressId)) throw NotFound("egress_ip_not_found", "egress IP not found");
  await assertEgressChecksConfigured(ctx);
  let created = false;
  let task: TaskRow;
  try {
    task = await ctx.db.transaction(async (tx) => {
      // Lock the egress row: two concurrent requests see each other's task, never start two.
      const [egress] = await tx.select({ id: egressIps.id }).from(egressIps).where(eq(egressIps.id, egressId.toLowerCase())).for("update");
      if (!egress) throw NotFound("egress_ip_not_found", "egress IP not found");
      const [live] = await tx
        .select()
        .from(tasks)
        .where(and(eq(tasks.egressIpId, egress.id), eq(tasks.kind, "egress.test"), inArray(tasks.status, ["pending", "running"])))
        .orderBy(desc(tasks.createdAt))
        .limit(1);
      if (live) return live;
      created = true;
      return insertTask(tx, { kind: "egress.test", egressIpId: egress.id, requestedBy: ctx.actor!.id, requestId: ctx.requestId });
    });
  } catch (err) {
    if ((err as { kind?: string }).kind) throw err;
    ctx.logger.error({ err }, "could not create the egress test task");
    throw Unavailable("service_unavailable", "the egress test could not be started");
  }
  if (created) await ctx.enqueue(task);
  if (asyncMode) return { status: 202, body: { task_id: task.id } };
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    const [row] = await ctx.db.select().from(tasks).where(eq(tasks.id, task.id));
    if (row && TERMINAL.has(row.status) && row.result) return { status: 200, body: row.result };
    // Canceled (or failed without a verdict): the result is not available here; poll the task.
    if (row && TERMINAL.has(row.status)) return { status: 202, body: { task_id: task.id } };
    if (Date.now() >= deadline) return { status: 202, body: { task_id: task.id } };
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
