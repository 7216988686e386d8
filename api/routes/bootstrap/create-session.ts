import { createBootstrapSession } from "../../../shared/services/access/bootstrap.js";
import { bootstrapSessionDoc, bootstrapSessionInput } from "../../../shared/services/access/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { errorDoc, jsonDoc, std } from "../docs.js";

export const createBootstrapSessionRoute = defineRoute({
  method: "post",
  path: "/v1/bootstrap/sessions",
  access: "public",
  summary: "Sign in with username and password and start your host",
  tags: ["bootstrap"],
  body: bootstrapSessionInput,
  responses: {
    200: jsonDoc("Session created; poll status_url", bootstrapSessionDoc),
    400: std[400],
    401: { description: "auth_invalid", ...errorDoc },
    403: { description: "account_disabled or account_expired", ...errorDoc },
    404: { description: "host_not_found", ...errorDoc },
    429: std[429],
    503: { description: "start_failed", ...errorDoc },
  },
  handler: async ({ c, ctx, deps, body }) =>
    json(c, 200, await createBootstrapSession({ ctx: { ...ctx, tokens: deps.tokens, limiter: deps.limiter, passwordWork: deps.passwordWork }, input: body })),
});
