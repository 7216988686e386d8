import { z } from "zod";
import { setUserStatus } from "../../../shared/services/users/set-status.js";
import { setUserStatusInput } from "../../../shared/services/users/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std, userDoc } from "../docs.js";

export const updateUserStatusRoute = defineRoute({
  method: "patch",
  path: "/v1/admin/users/{userID}",
  access: "admin",
  summary: "Disable or enable a user",
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
  handler: async ({ c, ctx, params, body }) =>
    json(c, 200, await setUserStatus({ ctx, userId: params.userID!, status: body.status })),
});
