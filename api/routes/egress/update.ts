import { z } from "zod";
import { updateEgress } from "../../../shared/services/egress/manage.js";
import { updateEgressInput } from "../../../shared/services/egress/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";
import { egressDoc } from "./create.js";

export const updateEgressRoute = defineRoute({
  method: "put",
  path: "/v1/admin/egress-ips/{ipID}",
  access: "admin",
  summary: 'Partially update an egress IP (secrets absent or "***" keep their value; a live bound host is reapplied)',
  tags: ["egress-ips"],
  body: updateEgressInput,
  responses: {
    200: jsonDoc("Updated", z.object({ egress_ip: egressDoc, task_id: z.string().uuid().optional() })),
    400: std[400],
    401: std[401],
    403: std[403],
    404: std[404],
    409: std[409],
    413: std[413],
  },
  handler: async ({ c, ctx, params, body }) => json(c, 200, await updateEgress({ ctx, egressId: params.ipID!, input: body })),
});
