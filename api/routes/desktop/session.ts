import { eq } from "drizzle-orm";
import { z } from "zod";
import { users } from "../../../shared/db/schema/index.js";
import { Conflict, Unauthorized } from "../../../shared/errors.js";
import { getHost } from "../../../shared/services/hosts/lookup.js";
import { requestWake } from "../../../shared/services/hosts/wake.js";
import { json } from "../../http/reply.js";
import { type AnyRoute, defineRoute } from "../../http/route.js";
import type { VncPortal } from "../../vnc/target.js";
import { desktopBaseUrl } from "../../vnc/target.js";
import { jsonDoc, std } from "../docs.js";

const sessionDoc = z.object({
  url: z.string().describe("Open this in a new browsing context: it works once, within expires_at"),
  expires_at: z.string(),
});

/**
 * `POST /v1/{admin,user}/hosts/{hostID}/vnc/session` (issue 10 §1, docs/api.md#vnc-proxy): the way a
 * browser opens a desktop without its login token ever appearing in a URL or cookie. Same
 * authorization as the proxy route; answers a one-time URL (api/vnc/desktop-sessions.ts).
 */
const makeRoute = (portal: VncPortal) =>
  defineRoute({
    method: "post",
    path: `/v1/${portal}/hosts/{hostID}/vnc/session`,
    access: portal,
    summary:
      portal === "admin"
        ? "A one-time URL that opens any host's desktop in a browser (30 s, single use)"
        : "A one-time URL that opens your host's desktop in a browser (30 s, single use)",
    tags: [portal === "admin" ? "hosts" : "portal"],
    body: z.strictObject({}),
    bodyOptional: true,
    responses: { 200: jsonDoc("One-time desktop URL", sessionDoc), 401: std[401], 403: std[403], 404: std[404], 409: std[409] },
    handler: async ({ c, deps, actor, params }) => {
      if (!actor) throw Unauthorized();
      const host = await getHost(deps.db, params.hostID!, portal === "user" ? { ownerId: actor.id } : {});
      if (host.status !== "running") {
        // A host stopped for idleness wakes: the one-time URL opens a page that waits for it (docs/idle.md#wake).
        const { result, task } = await requestWake(deps.db, host.id, { via: "desktop", now: deps.clock() });
        if (task) await deps.enqueue(task);
        if (result.state === "refused") throw Conflict("host_not_running", `the host is ${host.status}, not running`);
      }
      // The caller's token passed docs/api.md#token-checks a moment ago, so the row's version is the token's.
      const [row] = await deps.db.select({ tv: users.tokenVersion }).from(users).where(eq(users.id, actor.id));
      if (!row) throw Unauthorized();
      const { ticket, expiresAt } = await deps.desktops.issueTicket({ ...actor, tv: row.tv }, portal, host.id);
      const prefix = `/v1/${portal}/hosts/${host.id}/vnc/`;
      return json(c, 200, { url: `${desktopBaseUrl(deps)}${prefix}?ticket=${ticket}`, expires_at: expiresAt.toISOString() });
    },
  });

export const desktopSessionRoutes: AnyRoute[] = [makeRoute("admin"), makeRoute("user")];
