import { deleteBinding } from "../../../shared/services/bindings/manage.js";
import { noContent } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { std } from "../docs.js";

export const deleteBindingRoute = defineRoute({
  method: "delete",
  path: "/v1/admin/bindings/{bindingID}",
  access: "admin",
  summary: "Remove a binding (a running host loses internet: fail closed)",
  tags: ["bindings"],
  responses: { 204: { description: "Deleted" }, 401: std[401], 403: std[403], 404: std[404] },
  handler: async ({ c, ctx, params }) => {
    await deleteBinding({ ctx, bindingId: params.bindingID! });
    return noContent(c);
  },
});
