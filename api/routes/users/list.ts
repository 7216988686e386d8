import { listUsers } from "../../../shared/services/users/list.js";
import { listUsersQuery } from "../../../shared/services/users/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, listDoc, std, userDoc } from "../docs.js";

export const listUsersRoute = defineRoute({
  method: "get",
  path: "/v1/admin/users",
  access: "admin",
  summary: "List users (newest first)",
  tags: ["users"],
  query: listUsersQuery,
  responses: { 200: jsonDoc("Users", listDoc("users", userDoc)), 400: std[400], 401: std[401], 403: std[403] },
  handler: async ({ c, ctx, query }) => json(c, 200, await listUsers({ ctx, query })),
});
