import { z } from "zod";
import { listEngines } from "../../../shared/services/engines/manage.js";
import { listEnginesQuery } from "../../../shared/services/engines/schemas.js";
import { engineView } from "../../../shared/services/engines/view.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";

/** The engine object (docs/api.md#engines): TLS as certificate fingerprints, never the key. */
export const engineDoc = engineView;

export const listEnginesRoute = defineRoute({
  method: "get",
  path: "/v1/admin/engines",
  access: "admin",
  summary: "List Docker engines with health, capacity, usage and counts (filter: state)",
  tags: ["engines"],
  query: listEnginesQuery,
  responses: { 200: jsonDoc("Engines", z.object({ engines: z.array(engineDoc) })), 400: std[400], 401: std[401], 403: std[403] },
  handler: async ({ c, ctx, query }) => json(c, 200, await listEngines({ ctx, query })),
});
