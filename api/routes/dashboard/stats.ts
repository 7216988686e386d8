import { dashboardStats } from "../../../shared/services/dashboard/stats.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { dashboardView } from "../../../shared/views/index.js";
import { jsonDoc, std } from "../docs.js";


export const dashboardStatsRoute = defineRoute({
  method: "get",
  path: "/v1/admin/dashboard/stats",
  access: "admin",
  summary: "Counts of users, hosts, egress IPs and tasks",
  tags: ["dashboard"],
  responses: { 200: jsonDoc("Dashboard counts", dashboardView), 401: std[401], 403: std[403] },
  handler: async ({ c, ctx }) => json(c, 200, await dashboardStats({ ctx })),
});
