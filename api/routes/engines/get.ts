import { z } from "zod";
import { getEngine } from "../../../shared/services/engines/manage.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";
import { engineDoc } from "./list.js";

// `{engineId}`, not `{engineID}`: engine ids are names, and `…ID` parameters are documented as UUIDs (api/http/route.ts).
export const getEngineRoute = defineRoute({
  method: "get",
  path: "/v1/admin/engines/{engineId}",
  access: "admin",
  summary: "Get an engine",
  tags: ["engines"],
  responses: { 200: jsonDoc("Engine", z.object({ engine: engineDoc })), 401: std[401], 403: std[403], 404: std[404] },
  handler: async ({ c, ctx, params }) => json(c, 200, await getEngine({ ctx, engineId: params.engineId! })),
});
