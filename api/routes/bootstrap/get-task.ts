import { getBootstrapTask } from "../../../shared/services/access/bootstrap.js";
import { bootstrapTaskDoc } from "../../../shared/services/access/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { errorDoc, jsonDoc } from "../docs.js";

/** The task id is the capability here (no auth); access logs redact it (docs/api.md#routing). */
export const getBootstrapTaskRoute = defineRoute({
  method: "get",
  path: "/v1/bootstrap/tasks/{taskID}",
  access: "public",
  summary: "Progress of a bootstrap or entry start task",
  tags: ["bootstrap"],
  responses: {
    200: jsonDoc("Stage of the task", bootstrapTaskDoc),
    404: { description: "task_not_found", ...errorDoc },
  },
  handler: async ({ c, ctx, params }) => json(c, 200, await getBootstrapTask({ ctx, taskId: params.taskID! })),
});
