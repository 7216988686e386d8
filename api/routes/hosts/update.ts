import { z } from "zod";
import { updateHost, updateHostInput } from "../../../shared/services/hosts/update.js";
import { hostAdminView } from "../../../shared/views/index.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";

/** `PATCH /v1/admin/hosts/{hostID}` (docs/api.md#hosts-update): the host's idle policy (docs/idle.md#policy). */
export const updateHostRoute = defineRoute({
  method: "patch",
  path: "/v1/admin/hosts/{hostID}",
  access: "admin",
  summary: "Set a host's idle policy: idle_stop_minutes, idle_cpu_percent (null inherits the owner's), always_on",
  tags: ["hosts"],
  body: updateHostInput,
  responses: { 200: jsonDoc("Host", z.object({ host: hostAdminView })), 400: std[400], 401: std[401], 403: std[403], 404: std[404], 409: std[409] },
  handler: async ({ c, ctx, params, body }) => json(c, 200, await updateHost({ ctx, hostId: params.hostID!, input: body })),
});
