import { entryAuth } from "../../../shared/services/access/entry.js";
import { entryAuthDoc, entryAuthInput } from "../../../shared/services/access/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { errorDoc, jsonDoc, std } from "../docs.js";

export const entryAuthRoute = defineRoute({
  method: "post",
  path: "/v1/entry/{shortId}/auth",
  access: "public",
  summary: "Sign in to a host's entry link with the owner's login password",
  tags: ["entry"],
  body: entryAuthInput,
  responses: {
    200: jsonDoc("Host running: SSH target and a one-time ticket", entryAuthDoc),
    202: jsonDoc("Host starting: poll status_url, then sign in again", entryAuthDoc),
    400: std[400],
    401: { description: "invalid_credentials", ...errorDoc },
    403: { description: "account_disabled or account_expired", ...errorDoc },
    429: std[429],
    503: { description: "start_failed, or ssh_not_ready when the host stopped while the ticket was minted", ...errorDoc },
  },
  handler: async ({ c, ctx, deps, params, body }) => {
    const result = await entryAuth({
      ctx: { ...ctx, tokens: deps.tokens, limiter: deps.limiter, passwordWork: deps.passwordWork },
      shortId: params.shortId!,
      input: body,
      ssh: {
        sshPublicHost: deps.config.SSH_PUBLIC_HOST,
        sshPublicPort: deps.config.SSH_PUBLIC_PORT,
        ticketTtlSeconds: deps.config.HANDOFF_TICKET_TTL_SECONDS,
      },
    });
    return json(c, result.status === "ready" ? 200 : 202, result);
  },
});
