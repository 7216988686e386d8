import { desc, eq, inArray } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { egressIps, hostEgressBindings, hosts, users } from "../../db/schema/index.js";

/** Admin host objects (behaviour.md §4.1) for the given host ids or owner. */
export async function loadAdminHosts(db: DbOrTx, filter: { userId?: string; hostIds?: string[] }) {
  const base = db
    .select({ host: hosts, username: users.username, binding: hostEgressBindings, egress: egressIps })
    .from(hosts)
    .innerJoin(users, eq(users.id, hosts.userId))
    .leftJoin(hostEgressBindings, eq(hostEgressBindings.hostId, hosts.id))
    .leftJoin(egressIps, eq(egressIps.id, hostEgressBindings.egressIpId));
  const rows = filter.userId
    ? await base.where(eq(hosts.userId, filter.userId)).orderBy(desc(hosts.createdAt), desc(hosts.id))
    : await base.where(inArray(hosts.id, filter.hostIds ?? [])).orderBy(desc(hosts.createdAt), desc(hosts.id));
  return rows.map((r) => renderAdminHost(r));
}

export function renderAdminHost(r: {
  host: typeof hosts.$inferSelect;
  username: string;
  binding: typeof hostEgressBindings.$inferSelect | null;
  egress: typeof egressIps.$inferSelect | null;
}) {
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
    timezone: h.timezone,
    image: h.image,
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
    created_at: h.createdAt.toISOString(),
    updated_at: h.updatedAt.toISOString(),
  };
}
