import { exportSessions } from "../../../shared/services/sessions/export.js";
import { listSessionsQuery } from "../../../shared/services/sessions/schemas.js";
import { defineRoute } from "../../http/route.js";
import { ndjsonDoc, ndjsonResponse } from "../../http/ndjson.js";
import { std } from "../docs.js";

/**
 * Every SSH and desktop session as NDJSON, streamed (docs/api.md#export). Registered before
 * `/v1/admin/sessions/{sessionID}`, whose template the path also matches.
 */
export const exportSessionsRoute = defineRoute({
  method: "get",
  path: "/v1/admin/sessions/export",
  access: "admin",
  summary: "Export SSH and desktop sessions as NDJSON (oldest first, the list's filters, streamed)",
  tags: ["sessions"],
  query: listSessionsQuery,
  responses: { 200: ndjsonDoc("One session object per line"), 400: std[400], 401: std[401], 403: std[403] },
  handler: async ({ c, ctx, query }) =>
    ndjsonResponse(c, exportSessions({ ctx, query }), { filename: "sessions.ndjson", log: ctx.logger }),
});
