import { deleteEgress } from "../../../shared/services/egress/manage.js";
import { noContent } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { std } from "../docs.js";

export const deleteEgressRoute = defineRoute({
  method: "delete",
  path: "/v1/admin/egress-ips/{ipID}",
  access: "admin",
  summary: "Delete an unbound egress IP (409 egress_ip_in_use while bound)",
  tags: ["egress-ips"],
  responses: { 204: { description: "Deleted" }, 401: std[401], 403: std[403], 404: std[404], 409: std[409] },
  handler: async ({ c, ctx, params }) => {
    await deleteEgress({ ctx, egressId: params.ipID! });
    return noContent(c);
  },
});
