import { z } from "zod";
import { getSession } from "../../../shared/services/sessions/query.js";
import { sessionView } from "../../../shared/services/sessions/view.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";

const doc = jsonDoc("Session", z.object({ session: sessionView }));

export const getSessionRoute = defineRoute({
  method: "get",
  path: "/v1/admin/sessions/{sessionID}",
  access: "admin",
  summary: "Get one session",
  tags: ["sessions"],
  responses: { 200: doc, 401: std[401], 403: std[403], 404: std[404] },
  handler: async ({ c, ctx, params }) => json(c, 200, await getSession({ ctx, id: params.sessionID! })),
});

/** Another user's session is 404 `session_not_found` (docs/api.md#authorization). */
export const getOwnSessionRoute = defineRoute({
  method: "get",
  path: "/v1/user/sessions/{sessionID}",
  access: "user",
  summary: "Get one of your sessions",
  tags: ["portal"],
  responses: { 200: doc, 401: std[401], 404: std[404] },
  handler: async ({ c, ctx, params }) => json(c, 200, await getSession({ ctx, id: params.sessionID!, ownerId: ctx.actor!.id })),
});
