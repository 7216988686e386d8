import { z } from "zod";
import { createEgress } from "../../../shared/services/egress/manage.js";
import { createEgressInput } from "../../../shared/services/egress/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { egressIpView } from "../../../shared/views/index.js";
import { jsonDoc, std } from "../docs.js";

/** The egress IP object (docs/api.md#egress-ips); secrets are always "***" or null. */
export const egressDoc = egressIpView;

export const createEgressRoute = defineRoute({
  method: "post",
  path: "/v1/admin/egress-ips",
  access: "admin",
  summary: "Declare an egress IP reached through WireGuard or a proxy (sing-box outbound)",
  tags: ["egress-ips"],
  body: createEgressInput,
  responses: {
    201: jsonDoc("Created", z.object({ egress_ip: egressDoc })),
    400: std[400],
    401: std[401],
    403: std[403],
    409: std[409],
    413: std[413],
  },
  handler: async ({ c, ctx, body }) => json(c, 201, await createEgress({ ctx, input: body })),
});
