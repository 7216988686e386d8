import { removeEngine } from "../../../shared/services/engines/manage.js";
import { noContent } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { std } from "../docs.js";

export const removeEngineRoute = defineRoute({
  method: "delete",
  path: "/v1/admin/engines/{engineId}",
  access: "admin",
  summary: "Remove an engine with no hosts or pool members (409 engine_in_use, engine_protected for default)",
  tags: ["engines"],
  responses: { 204: { description: "Removed" }, 401: std[401], 403: std[403], 404: std[404], 409: std[409] },
  handler: async ({ c, ctx, params }) => {
    await removeEngine({ ctx, engineId: params.engineId! });
    return noContent(c);
  },
});
