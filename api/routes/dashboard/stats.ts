import { z } from "zod";
import { dashboardStats } from "../../../shared/services/dashboard/stats.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";

const n = () => z.number().int();
/** The dashboard object of docs/api.md#dashboard. */
const dashboardDoc = z.object({
  active_users: n(),
  running_hosts: n(),
  available_ips: n(),
  users: z.object({ total: n(), active: n(), disabled: n(), expired: n() }),
  hosts: z.object({
    total: n(),
    pending: n(),
    creating: n(),
    starting: n(),
    running: n(),
    stopping: n(),
    stopped: n(),
    rebuilding: n(),
    failed: n(),
    deleting: n(),
  }),
  egress_ips: z.object({ total: n(), available: n(), disabled: n(), bound: n(), failing: n() }),
  tasks: z.object({ pending: n(), running: n(), failed_24h: n() }),
});

export const dashboardStatsRoute = defineRoute({
  method: "get",
  path: "/v1/admin/dashboard/stats",
  access: "admin",
  summary: "Counts of users, hosts, egress IPs and tasks",
  tags: ["dashboard"],
  responses: { 200: jsonDoc("Dashboard counts", dashboardDoc), 401: std[401], 403: std[403] },
  handler: async ({ c, ctx }) => json(c, 200, await dashboardStats({ ctx })),
});
