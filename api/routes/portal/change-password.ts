import { z } from "zod";
import { changeOwnPassword } from "../../../shared/services/auth/change-password.js";
import { changePasswordInput } from "../../../shared/services/auth/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";

export const changePasswordRoute = defineRoute({
  method: "post",
  path: "/v1/user/change-password",
  access: "user",
  unbudgeted: true,
  summary: "Change your own password (revokes your other tokens; returns a fresh one)",
  tags: ["portal"],
  body: changePasswordInput,
  responses: {
    200: jsonDoc("Changed", z.object({ status: z.literal("ok"), token: z.string(), expires_in: z.number().int() })),
    400: std[400],
    401: std[401],
    409: std[409],
    429: std[429],
  },
  handler: async ({ c, ctx, deps, body }) =>
    json(c, 200, await changeOwnPassword({ ctx: { ...ctx, tokens: deps.tokens, limiter: deps.limiter, passwordWork: deps.passwordWork }, input: body })),
});
