import { listSessions } from "../../../shared/services/sessions/query.js";
import { listOwnSessionsQuery, listSessionsQuery } from "../../../shared/services/sessions/schemas.js";
import { sessionView } from "../../../shared/services/sessions/view.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, listDoc, std } from "../docs.js";

/** Every SSH and desktop session, filterable (docs/sessions.md#api). */
export const listSessionsRoute = defineRoute({
  method: "get",
  path: "/v1/admin/sessions",
  access: "admin",
  summary: "List SSH and desktop sessions (newest first)",
  tags: ["sessions"],
  query: listSessionsQuery,
  responses: { 200: jsonDoc("Sessions", listDoc("sessions", sessionView)), 400: std[400], 401: std[401], 403: std[403] },
  handler: async ({ c, ctx, query }) => json(c, 200, await listSessions({ ctx, query })),
});

/** The caller's own sessions only. */
export const listOwnSessionsRoute = defineRoute({
  method: "get",
  path: "/v1/user/sessions",
  access: "user",
  summary: "List your SSH and desktop sessions (newest first)",
  tags: ["portal"],
  query: listOwnSessionsQuery,
  responses: { 200: jsonDoc("Sessions", listDoc("sessions", sessionView)), 400: std[400], 401: std[401] },
  handler: async ({ c, ctx, query }) => json(c, 200, await listSessions({ ctx, query, ownerId: ctx.actor!.id })),
});
