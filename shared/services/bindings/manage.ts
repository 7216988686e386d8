import { eq } from "drizzle-orm";
import { z } from "zod";
import { type BindingRow, egressIps, hostEgressBindings } from "../../db/schema/index.js";
import { isUniqueViolation } from "../../db/pg-errors.js";
import { Conflict, isServiceError, NotFound } from "../../errors.js";
import { isUuid, uuidField } from "../../validation.js";
import type { BindingView } from "../../views/index.js";
import type { ServiceContext } from "../context.js";
import { assertEgressChecksConfigured } from "../egress/checks.js";
import { applyEgressTaskFor } from "../egress/manage.js";
import { recordEvent } from "../events.js";
import { assertNotDeleting, getHost } from "../hosts/lookup.js";

/**
 * Host ↔ egress IP bindings (docs/api.md#bindings). At most one per host and one per egress IP:
 * both are unique constraints, and the rows involved are locked host first, then egress (the
 * order host create uses too), so concurrent requests serialise instead of deadlocking and a
 * race that still slips through ends in 409, never 500.
 */

export const createBindingInput = z.strictObject({ host_id: uuidField, egress_ip_id: uuidField });
export type CreateBindingInput = z.output<typeof createBindingInput>;

export function renderBinding(b: BindingRow): BindingView {
  return { id: b.id, host_id: b.hostId, egress_ip_id: b.egressIpId, created_at: b.createdAt.toISOString() };
}

const HOST_ALREADY_BOUND = () => Conflict("host_already_bound", "the host is already bound to another egress IP");
const EGRESS_ALREADY_BOUND = () => Conflict("egress_ip_already_bound", "the egress IP is bound to another host");

/**
 * `POST /v1/admin/bindings`, checked in the order of the docs/api.md#bindings table. 200 for exactly the existing
 * pair (no task, no event); 201 otherwise, with `task_id` when the host's gateway is live.
 */
export async function createBinding({ ctx, input }: { ctx: ServiceContext; input: CreateBindingInput }) {
  await assertEgressChecksConfigured(ctx); // the worker verifies the bound egress (README "Deploying the egress check service (checkd)")
  try {
    const out = await ctx.db.transaction(async (tx) => {
      const host = await getHost(tx, input.host_id, { forUpdate: true });
      const [egress] = await tx.select().from(egressIps).where(eq(egressIps.id, input.egress_ip_id)).for("update");
      if (!egress) throw NotFound("egress_ip_not_found", "egress IP not found");
      assertNotDeleting(host);
      const [ofHost] = await tx.select().from(hostEgressBindings).where(eq(hostEgressBindings.hostId, host.id));
      if (ofHost?.egressIpId === egress.id) return { status: 200 as const, binding: ofHost, task: null };
      if (ofHost) throw HOST_ALREADY_BOUND();
      const [ofEgress] = await tx.select({ id: hostEgressBindings.id }).from(hostEgressBindings).where(eq(hostEgressBindings.egressIpId, egress.id));
      if (ofEgress) throw EGRESS_ALREADY_BOUND();
      if (egress.status === "disabled") throw Conflict("egress_ip_disabled", "the egress IP is disabled");

      const [binding] = await tx.insert(hostEgressBindings).values({ hostId: host.id, egressIpId: egress.id }).returning();
      const task = await applyEgressTaskFor(tx, host, { requestedBy: ctx.actor!.id, egressIpId: egress.id, requestId: ctx.requestId });
      await recordEvent(tx, {
        type: "binding.created",
        message: `egress ${egress.ipAddress} bound to host ${host.shortId}`,
        actorId: ctx.actor?.id,
        userId: host.userId,
        hostId: host.id,
        taskId: task?.id ?? null,
        metadata: { binding_id: binding!.id, egress_ip_id: egress.id, ip_address: egress.ipAddress },
      });
      return { status: 201 as const, binding: binding!, task };
    });
    if (out.task) await ctx.enqueue(out.task);
    const body = out.task ? { binding: renderBinding(out.binding), task_id: out.task.id } : { binding: renderBinding(out.binding) };
    return { status: out.status, body };
  } catch (err) {
    if (isUniqueViolation(err, "bindings_host_uq")) throw HOST_ALREADY_BOUND();
    if (isUniqueViolation(err, "bindings_egress_uq")) throw EGRESS_ALREADY_BOUND();
    throw err;
  }
}

/**
 * `DELETE /v1/admin/bindings/{bindingID}` → 204. A live host gets a `host.apply-egress` task that
 * switches its gateway to blocked mode: unbinding cuts the host's internet (fail closed, docs/api.md#bindings).
 */
export async function deleteBinding({ ctx, bindingId }: { ctx: ServiceContext; bindingId: string }): Promise<void> {
  const notFound = () => NotFound("binding_not_found", "binding not found");
  if (!isUuid(bindingId)) throw notFound();
  const id = bindingId.toLowerCase();
  const task = await ctx.db.transaction(async (tx) => {
    const [seen] = await tx.select({ hostId: hostEgressBindings.hostId }).from(hostEgressBindings).where(eq(hostEgressBindings.id, id));
    if (!seen) throw notFound();
    // Host row first (the lock order of binding creation), then the binding itself.
    // A host deleted in between took its binding with it (ON DELETE CASCADE).
    const host = await getHost(tx, seen.hostId, { forUpdate: true }).catch((err: unknown) => {
      throw isServiceError(err) && err.code === "host_not_found" ? notFound() : err;
    });
    const [binding] = await tx.select().from(hostEgressBindings).where(eq(hostEgressBindings.id, id)).for("update");
    if (!binding) throw notFound();
    const [egress] = await tx.select({ ipAddress: egressIps.ipAddress }).from(egressIps).where(eq(egressIps.id, binding.egressIpId));
    await tx.delete(hostEgressBindings).where(eq(hostEgressBindings.id, id));
    // The task names no egress: after the unbind there is none to apply, only blocked mode.
    const task = await applyEgressTaskFor(tx, host, { requestedBy: ctx.actor!.id, egressIpId: null, requestId: ctx.requestId });
    await recordEvent(tx, {
      type: "binding.deleted",
      message: `egress ${egress?.ipAddress ?? binding.egressIpId} unbound from host ${host.shortId}`,
      actorId: ctx.actor?.id,
      userId: host.userId,
      hostId: host.id,
      taskId: task?.id ?? null,
      metadata: { binding_id: binding.id, egress_ip_id: binding.egressIpId, ip_address: egress?.ipAddress ?? null },
    });
    return task;
  });
  if (task) await ctx.enqueue(task);
}
