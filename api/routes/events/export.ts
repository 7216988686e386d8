import { exportEvents, exportEventsQuery } from "../../../shared/services/events/export.js";
import { defineRoute } from "../../http/route.js";
import { ndjsonDoc, ndjsonResponse } from "../../http/ndjson.js";
import { std } from "../docs.js";

/** The audit trail as NDJSON, streamed (docs/api.md#export). */
export const exportEventsRoute = defineRoute({
  method: "get",
  path: "/v1/admin/events/export",
  access: "admin",
  summary: "Export audit events as NDJSON (oldest first, the list's filters, streamed)",
  tags: ["events"],
  query: exportEventsQuery,
  responses: { 200: ndjsonDoc("One event object per line"), 400: std[400], 401: std[401], 403: std[403] },
  handler: async ({ c, ctx, query }) =>
    ndjsonResponse(c, exportEvents({ ctx, query }), { filename: "events.ndjson", log: ctx.logger }),
});
