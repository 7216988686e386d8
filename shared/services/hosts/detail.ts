import { NotFound } from "../../errors.js";
import { isUuid } from "../../validation.js";
import type { ServiceContext } from "../context.js";
import { renderEgress } from "../egress/render.js";
import { type AccessSettings, renderAccess } from "./access.js";
import type { HostAdminDetailView, HostUserDetailView } from "../../views/index.js";
import { hostDetailRow } from "./read-queries.js";
import { renderAdminHost, renderLastTask, renderUserHost } from "./render.js";

/**
 * GET /v1/admin/hosts/{id} and GET /v1/user/hosts/{id} (docs/api.md#hosts-lifecycle,
 * docs/api.md#hosts-portal): one query (shared/services/hosts/read-queries.ts), then the owner check.
 */
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
  if (!isUuid(hostId)) throw NotFound("host_not_found", "host not found");
  const row = await hostDetailRow(ctx.db, hostId.toLowerCase());
  // Another tenant's host is indistinguishable from a missing one (docs/architecture.md#tree).
  if (!row || (portal === "user" && row.host.userId !== ctx.actor!.id)) throw NotFound("host_not_found", "host not found");
  const common = {
    user: { id: row.host.userId, username: row.username },
    access: renderAccess(access, row.host, portal, row.sshHostKey),
    last_task: renderLastTask(row.lastTask),
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
