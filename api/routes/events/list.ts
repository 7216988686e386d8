import { listEvents } from "../../../shared/services/events/query.js";
import { listEventsQuery } from "../../../shared/services/events/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { eventView } from "../../../shared/views/index.js";
import { jsonDoc, listDoc, std } from "../docs.js";

const eventDoc = eventView;

export const listEventsRoute = defineRoute({
  method: "get",
  path: "/v1/admin/events",
  access: "admin",
  summary: "List audit events (newest first)",
  tags: ["events"],
  query: listEventsQuery,
  responses: { 200: jsonDoc("Events", listDoc("events", eventDoc)), 400: std[400], 401: std[401], 403: std[403] },
  handler: async ({ c, ctx, query }) => json(c, 200, await listEvents({ ctx, query })),
});
