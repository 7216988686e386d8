import { eq } from "drizzle-orm";
import { hosts, users } from "../../db/schema/index.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { getHost } from "../hosts/lookup.js";
import { loadAdminHosts } from "../hosts/render.js";
import { getLiveUser } from "../users/lookup.js";
import { renderUser } from "../users/render.js";

type Mode = "off" | "output" | "input" | null;

/**
 * The recording policy in force for a new SSH session (docs/sessions.md#recording): the host's
 * own setting, else its owner's, else SESSION_RECORDING.
 */
export function effectiveRecording(
  host: { sessionRecording: Mode },
  owner: { sessionRecording: Mode },
  globalDefault: "off" | "output" | "input",
): "off" | "output" | "input" {
  return host.sessionRecording ?? owner.sessionRecording ?? globalDefault;
}

/** `PUT /v1/admin/users/{userID}/session-recording`. */
export async function setUserRecording({ ctx, userId, mode }: { ctx: ServiceContext; userId: string; mode: Mode }) {
  return ctx.db.transaction(async (tx) => {
    const user = await getLiveUser(tx, userId, { forUpdate: true });
    if (user.sessionRecording !== mode) {
      await tx.update(users).set({ sessionRecording: mode, updatedAt: ctx.clock() }).where(eq(users.id, user.id));
      await recordEvent(tx, {
        type: "user.session_recording.updated",
        message: `session recording for ${user.username}: ${mode ?? "inherit"}`,
        actorId: ctx.actor?.id,
        userId: user.id,
        metadata: { from: user.sessionRecording, to: mode },
      });
    }
    const [row] = await tx.select().from(users).where(eq(users.id, user.id));
    return { user: renderUser(row!, ctx.clock()) };
  });
}

/** `PUT /v1/admin/hosts/{hostID}/session-recording`. */
export async function setHostRecording({ ctx, hostId, mode }: { ctx: ServiceContext; hostId: string; mode: Mode }) {
  const id = await ctx.db.transaction(async (tx) => {
    const host = await getHost(tx, hostId, { forUpdate: true });
    if (host.sessionRecording !== mode) {
      await tx.update(hosts).set({ sessionRecording: mode, updatedAt: ctx.clock() }).where(eq(hosts.id, host.id));
      await recordEvent(tx, {
        type: "host.session_recording.updated",
        message: `session recording for host ${host.shortId}: ${mode ?? "inherit"}`,
        actorId: ctx.actor?.id,
        userId: host.userId,
        hostId: host.id,
        metadata: { from: host.sessionRecording, to: mode },
      });
    }
    return host.id;
  });
  const [host] = await loadAdminHosts(ctx.db, { hostIds: [id] });
  return { host: host! };
}
