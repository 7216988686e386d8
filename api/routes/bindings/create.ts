import { z } from "zod";
import { createBinding, createBindingInput } from "../../../shared/services/bindings/manage.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { bindingView } from "../../../shared/views/index.js";
import { jsonDoc, std } from "../docs.js";

const bindingDoc = bindingView;

export const createBindingRoute = defineRoute({
  method: "post",
  path: "/v1/admin/bindings",
  access: "admin",
  summary: "Bind an egress IP to a host (applied live to a running host)",
  tags: ["bindings"],
  body: createBindingInput,
  responses: {
    200: jsonDoc("This binding already exists", z.object({ binding: bindingDoc })),
    201: jsonDoc("Created", z.object({ binding: bindingDoc, task_id: z.string().uuid().optional() })),
    400: std[400],
    401: std[401],
    403: std[403],
    404: std[404],
    409: std[409],
    413: std[413],
  },
  handler: async ({ c, ctx, body }) => {
    const { status, body: out } = await createBinding({ ctx, input: body });
    return json(c, status, out);
  },
});
