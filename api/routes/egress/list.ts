import { listEgress } from "../../../shared/services/egress/manage.js";
import { listEgressQuery } from "../../../shared/services/egress/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, listDoc, std } from "../docs.js";
import { egressDoc } from "./create.js";

export const listEgressRoute = defineRoute({
  method: "get",
  path: "/v1/admin/egress-ips",
  access: "admin",
  summary: "List egress IPs (filters: status, tunnel_type, health, bound)",
  tags: ["egress-ips"],
  query: listEgressQuery,
  responses: { 200: jsonDoc("Egress IPs", listDoc("egress_ips", egressDoc)), 400: std[400], 401: std[401], 403: std[403] },
  handler: async ({ c, ctx, query }) => json(c, 200, await listEgress({ ctx, query })),
});
