import { dashboardCharts } from "../../../shared/services/dashboard/charts.js";
import { dashboardChartsQuery } from "../../../shared/services/dashboard/charts-query.js";
import { dashboardChartsView } from "../../../shared/views/dashboard-charts.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";

export const dashboardChartsRoute = defineRoute({
  method: "get",
  path: "/v1/admin/dashboard/charts",
  access: "admin",
  summary: "Time series for the dashboard: tasks, sessions, attestations per bucket; hosts, engines and pool now",
  tags: ["dashboard"],
  query: dashboardChartsQuery,
  responses: { 200: jsonDoc("Dashboard charts", dashboardChartsView), 400: std[400], 401: std[401], 403: std[403] },
  handler: async ({ c, ctx, query }) => json(c, 200, await dashboardCharts({ ctx, query })),
});
