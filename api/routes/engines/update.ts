import { z } from "zod";
import { updateEngine } from "../../../shared/services/engines/manage.js";
import { updateEngineInput } from "../../../shared/services/engines/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";
import { engineDoc } from "./list.js";

export const updateEngineRoute = defineRoute({
  method: "patch",
  path: "/v1/admin/engines/{engineId}",
  access: "admin",
  summary: "Change an engine's labels, capacity, endpoint or TLS material (fields present change)",
  tags: ["engines"],
  body: updateEngineInput,
  responses: {
    200: jsonDoc("Updated", z.object({ engine: engineDoc })),
    400: std[400],
    401: std[401],
    403: std[403],
    404: std[404],
    413: std[413],
  },
  handler: async ({ c, ctx, params, body }) => json(c, 200, await updateEngine({ ctx, engineId: params.engineId!, input: body })),
});
