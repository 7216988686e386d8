import { z } from "zod";
import { getTask } from "../../../shared/services/tasks/query.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";
import { taskDoc } from "./doc.js";

export const getTaskRoute = defineRoute({
  method: "get",
  path: "/v1/admin/tasks/{taskID}",
  access: "admin",
  summary: "Get a task with its steps",
  tags: ["tasks"],
  responses: { 200: jsonDoc("Task", z.object({ task: taskDoc })), 401: std[401], 403: std[403], 404: std[404] },
  handler: async ({ c, ctx, params }) => json(c, 200, await getTask({ ctx, taskId: params.taskID! })),
});
