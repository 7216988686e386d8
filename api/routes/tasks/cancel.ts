import { z } from "zod";
import { cancelTask } from "../../../shared/services/tasks/cancel.js";
import { cancelTaskInput } from "../../../shared/services/tasks/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";
import { taskDoc } from "./doc.js";

export const cancelTaskRoute = defineRoute({
  method: "post",
  path: "/v1/admin/tasks/{taskID}/cancel",
  access: "admin",
  summary: "Cancel a task: pending ones at once (200), running ones cooperatively (202)",
  tags: ["tasks"],
  body: cancelTaskInput,
  bodyOptional: true,
  responses: {
    200: jsonDoc("Canceled", z.object({ task: taskDoc })),
    202: jsonDoc("Cancel requested; the worker stops at the next step boundary", z.object({ task: taskDoc })),
    400: std[400],
    401: std[401],
    403: std[403],
    404: std[404],
    409: std[409],
  },
  handler: async ({ c, ctx, params }) => {
    const { status, task } = await cancelTask({ ctx, taskId: params.taskID! });
    return json(c, status, { task });
  },
});
