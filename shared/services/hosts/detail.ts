import { eq } from "drizzle-orm";
import { hosts } from "../../db/schema/index.js";
import { NotFound } from "../../errors.js";
import type { ServiceContext } from "../context.js";
import { renderEgress } from "../egress/render.js";
import { type AccessSettings, accessFor } from "./access.js";
import type { HostAdminDetailView, HostUserDetailView } from "../../views/index.js";
import { getHost } from "./lookup.js";
import { lastTaskOf, loadHostRows, renderAdminHost, renderLastTask, renderUserHost } from "./render.js";

/** GET /v1/admin/hosts/{id} and GET /v1/user/hosts/{id} (docs/api.md#hosts-lifecycle, docs/api.md#hosts-portal). */
export async function getHostDetail({
  ctx,
  hostId,
  access,
  portal,
}: {
  ctx: ServiceContext;
  hostId: string;
  access: AccessSettings;
  portal: "admin" | "user";
}): Promise<HostAdminDetailView | HostUserDetailView> {
  const host = await getHost(ctx.db, hostId, portal === "user" ? { ownerId: ctx.actor!.id } : {});
  const [row] = await loadHostRows(ctx.db, eq(hosts.id, host.id));
  if (!row) throw NotFound("host_not_found", "host not found");
  const common = {
    user: { id: row.host.userId, username: row.username },
    access: await accessFor(ctx.db, access, row.host, portal),
    last_task: renderLastTask(await lastTaskOf(ctx.db, host.id)),
  };
  if (portal === "admin") {
    return {
      host: renderAdminHost(row),
      ...common,
      egress: row.egress ? renderEgress(row.egress, row.binding) : null,
    };
  }
  return {
    host: renderUserHost(row),
    ...common,
    egress: row.egress
      ? {
          label: row.egress.label,
          ip_address: row.egress.ipAddress,
          tunnel_type: row.egress.tunnelType,
          health: row.egress.health,
        }
      : null,
  };
}
