import { z } from "zod";
import { loginInput } from "../../../shared/services/auth/schemas.js";
import { login } from "../../../shared/services/auth/login.js";
import { defineRoute } from "../../http/route.js";
import { json } from "../../http/reply.js";
import { jsonDoc, std } from "../docs.js";

const loginResponse = z.object({
  token: z.string(),
  role: z.enum(["admin", "user"]),
  username: z.string(),
  expires_in: z.number().int(),
});

/** `/v1/auth/login` and the legacy `/v1/admin/login` are identical in every respect. */
const makeLoginRoute = (path: string) =>
  defineRoute({
    method: "post",
    path,
    access: "public",
    summary: path === "/v1/admin/login" ? "Log in (legacy path)" : "Log in",
    tags: ["auth"],
    body: loginInput,
    responses: {
      200: jsonDoc("A token", loginResponse),
      400: std[400],
      401: std[401],
      403: { ...std[403], description: "Account disabled or expired" },
      429: std[429],
    },
    handler: async ({ c, ctx, deps, body }) =>
      json(c, 200, await login({ ctx: { ...ctx, tokens: deps.tokens, limiter: deps.limiter, passwordWork: deps.passwordWork }, input: body, path })),
  });

export const loginRoute = makeLoginRoute("/v1/auth/login");
export const legacyLoginRoute = makeLoginRoute("/v1/admin/login");
