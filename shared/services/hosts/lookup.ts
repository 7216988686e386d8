import { eq } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { hosts, type HostRow } from "../../db/schema/index.js";
import { Conflict, NotFound } from "../../errors.js";
import { isUuid } from "../../validation.js";

/** A host by id, or 404 `host_not_found` (also for non-UUIDs and, with `ownerId`, other users' hosts). */
export async function getHost(
  db: DbOrTx,
  id: string,
  opts: { forUpdate?: boolean; ownerId?: string } = {},
): Promise<HostRow> {
  if (!isUuid(id)) throw NotFound("host_not_found", "host not found");
  const q = db.select().from(hosts).where(eq(hosts.id, id.toLowerCase()));
  const [row] = opts.forUpdate ? await q.for("update") : await q;
  // Another tenant's host is indistinguishable from a missing one (docs/architecture.md#tree).
  if (!row || (opts.ownerId !== undefined && row.userId !== opts.ownerId)) {
    throw NotFound("host_not_found", "host not found");
  }
  return row;
}

export function assertNotDeleting(host: HostRow): void {
  if (host.status === "deleting") throw Conflict("host_deleting", "the host is being deleted");
}
