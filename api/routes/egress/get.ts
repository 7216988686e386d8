import { z } from "zod";
import { getEgress } from "../../../shared/services/egress/manage.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";
import { egressDoc } from "./create.js";

export const getEgressRoute = defineRoute({
  method: "get",
  path: "/v1/admin/egress-ips/{ipID}",
  access: "admin",
  summary: "Get an egress IP",
  tags: ["egress-ips"],
  responses: { 200: jsonDoc("Egress IP", z.object({ egress_ip: egressDoc })), 401: std[401], 403: std[403], 404: std[404] },
  handler: async ({ c, ctx, params }) => json(c, 200, await getEgress({ ctx, egressId: params.ipID! })),
});
