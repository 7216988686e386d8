import { listTasks } from "../../../shared/services/tasks/query.js";
import { listTasksQuery } from "../../../shared/services/tasks/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, listDoc, std } from "../docs.js";
import { taskDoc } from "./doc.js";

export const listTasksRoute = defineRoute({
  method: "get",
  path: "/v1/admin/tasks",
  access: "admin",
  summary: "List tasks (newest first), filtered by status, kind or host",
  tags: ["tasks"],
  query: listTasksQuery,
  responses: { 200: jsonDoc("Tasks", listDoc("tasks", taskDoc)), 400: std[400], 401: std[401], 403: std[403] },
  handler: async ({ c, ctx, query }) => json(c, 200, await listTasks({ ctx, query })),
});
