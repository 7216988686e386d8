import { z } from "zod";
import { rotateUserPassword } from "../../../shared/services/users/rotate-password.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";

export const rotateUserPasswordRoute = defineRoute({
  method: "post",
  path: "/v1/admin/users/{userID}/rotate-password",
  access: "admin",
  summary: "Replace a user's password with a generated one (shown once)",
  tags: ["users"],
  body: z.strictObject({}),
  bodyOptional: true,
  responses: {
    200: jsonDoc("The new password", z.object({ new_password: z.string() })),
    400: std[400],
    401: std[401],
    403: std[403],
    404: std[404],
    409: std[409],
  },
  handler: async ({ c, ctx, params }) => json(c, 200, await rotateUserPassword({ ctx, userId: params.userID! })),
});
