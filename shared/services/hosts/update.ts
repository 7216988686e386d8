import { eq } from "drizzle-orm";
import { z } from "zod";
import { hosts } from "../../db/schema/index.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { idleCpuPercentField, idleStopMinutesField } from "./idle-policy.js";
import { assertNotDeleting, getHost } from "./lookup.js";
import { loadAdminHosts } from "./render.js";

/** `PATCH /v1/admin/hosts/{hostID}` (docs/api.md#hosts-update): the host's idle policy, partial. */
export const updateHostInput = z
  .strictObject({
    idle_stop_minutes: idleStopMinutesField.optional(),
    idle_cpu_percent: idleCpuPercentField.optional(),
    always_on: z.boolean().optional(),
  })
  .refine((v) => Object.keys(v).length > 0, { message: "at least one field is required" });
export type UpdateHostInput = z.output<typeof updateHostInput>;

/**
 * Change a host's idle policy (docs/idle.md#policy). Takes effect at the next idle scan; nothing
 * is started or stopped here. Only what changes is written, with one `host.updated` event naming
 * it; an unchanged request writes nothing.
 */
export async function updateHost({ ctx, hostId, input }: { ctx: ServiceContext; hostId: string; input: UpdateHostInput }) {
  await ctx.db.transaction(async (tx) => {
    const host = await getHost(tx, hostId, { forUpdate: true });
    assertNotDeleting(host);
    const patch: Partial<typeof hosts.$inferInsert> = {};
    const changed: Record<string, { from: unknown; to: unknown }> = {};
    if (input.idle_stop_minutes !== undefined && input.idle_stop_minutes !== host.idleStopMinutes) {
      patch.idleStopMinutes = input.idle_stop_minutes;
      changed.idle_stop_minutes = { from: host.idleStopMinutes, to: input.idle_stop_minutes };
    }
    if (input.idle_cpu_percent !== undefined && input.idle_cpu_percent !== host.idleCpuPercent) {
      patch.idleCpuPercent = input.idle_cpu_percent;
      changed.idle_cpu_percent = { from: host.idleCpuPercent, to: input.idle_cpu_percent };
    }
    if (input.always_on !== undefined && input.always_on !== host.alwaysOn) {
      patch.alwaysOn = input.always_on;
      changed.always_on = { from: host.alwaysOn, to: input.always_on };
    }
    if (!Object.keys(changed).length) return;
    // A changed policy starts the idle window again: the new one is measured from now.
    await tx.update(hosts).set({ ...patch, lastActiveAt: ctx.clock(), updatedAt: ctx.clock() }).where(eq(hosts.id, host.id));
    await recordEvent(tx, {
      type: "host.updated",
      message: `host ${host.shortId} updated: ${Object.keys(changed).join(", ")}`,
      actorId: ctx.actor?.id,
      userId: host.userId,
      hostId: host.id,
      metadata: { changed },
    });
  });
  const [host] = await loadAdminHosts(ctx.db, { hostIds: [hostId.toLowerCase()] });
  return { host: host! };
}
