import { z } from "zod";
import { createUser } from "../../../shared/services/users/create.js";
import { createUserInput } from "../../../shared/services/users/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std, userDoc } from "../docs.js";

export const createUserRoute = defineRoute({
  method: "post",
  path: "/v1/admin/users",
  access: "admin",
  summary: "Create a user (a generated password is returned once when none is given)",
  tags: ["users"],
  body: createUserInput,
  responses: {
    201: jsonDoc("Created", z.object({ user: userDoc, password: z.string().optional() })),
    400: std[400],
    401: std[401],
    403: std[403],
    409: std[409],
    413: std[413],
  },
  handler: async ({ c, ctx, body }) => json(c, 201, await createUser({ ctx, input: body })),
});
