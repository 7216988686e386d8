import { issueHandoff } from "../../../shared/services/access/bootstrap.js";
import { handoffDoc } from "../../../shared/services/access/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { errorDoc, jsonDoc } from "../docs.js";

export const bootstrapHandoffRoute = defineRoute({
  method: "get",
  path: "/v1/bootstrap/tasks/{taskID}/handoff",
  access: "public",
  summary: "The one-time SSH ticket for a bootstrap task that succeeded",
  tags: ["bootstrap"],
  responses: {
    200: jsonDoc("SSH target and one-time ticket", handoffDoc),
    404: { description: "task_not_found", ...errorDoc },
    410: { description: "handoff_consumed, or handoff_expired (more than HANDOFF_WINDOW_SECONDS after the task ended)", ...errorDoc },
    503: { description: "ssh_not_ready (Retry-After: 2), or the mapped code of a failed task", ...errorDoc },
  },
  handler: async ({ c, ctx, deps, params }) =>
    json(
      c,
      200,
      await issueHandoff({
        ctx,
        taskId: params.taskID!,
        ssh: {
          sshPublicHost: deps.config.SSH_PUBLIC_HOST,
          sshPublicPort: deps.config.SSH_PUBLIC_PORT,
          ticketTtlSeconds: deps.config.HANDOFF_TICKET_TTL_SECONDS,
          windowSeconds: deps.config.HANDOFF_WINDOW_SECONDS,
        },
      }),
    ),
});
