import { z } from "zod";
import { addEngine } from "../../../shared/services/engines/manage.js";
import { addEngineInput } from "../../../shared/services/engines/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";
import { engineDoc } from "./list.js";

export const addEngineRoute = defineRoute({
  method: "post",
  path: "/v1/admin/engines",
  access: "admin",
  summary: "Add a Docker engine (unix:///path, or tcp://host:port with mutual TLS)",
  tags: ["engines"],
  body: addEngineInput,
  responses: {
    201: jsonDoc("Added", z.object({ engine: engineDoc })),
    400: std[400],
    401: std[401],
    403: std[403],
    409: { ...std[409], description: "engine_exists" },
    413: std[413],
  },
  handler: async ({ c, ctx, body }) => json(c, 201, await addEngine({ ctx, input: body })),
});
