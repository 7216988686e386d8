import { z } from "zod";
import { setUserStatus } from "../../../shared/services/users/set-status.js";
import { setUserStatusInput } from "../../../shared/services/users/schemas.js";
import { setUserIdlePolicy } from "../../../shared/services/users/update-idle.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std, userDoc } from "../docs.js";

export const updateUserStatusRoute = defineRoute({
  method: "patch",
  path: "/v1/admin/users/{userID}",
  access: "admin",
  summary: "Disable or enable a user; set the idle policy of their hosts",
  tags: ["users"],
  body: setUserStatusInput,
  responses: {
    200: jsonDoc("User", z.object({ user: userDoc })),
    400: std[400],
    401: std[401],
    403: std[403],
    404: std[404],
    409: std[409],
  },
  handler: async ({ c, ctx, params, body }) => {
    let result = body.status !== undefined ? await setUserStatus({ ctx, userId: params.userID!, status: body.status }) : null;
    // The idle policy (docs/idle.md#policy) after the status: a refused status change (409) changes nothing.
    if (body.idle_stop_minutes !== undefined || body.idle_cpu_percent !== undefined) {
      result = await setUserIdlePolicy({ ctx, userId: params.userID!, input: body });
    }
    return json(c, 200, result!);
  },
});
