import { z } from "zod";
import { timestampField } from "../../validation.js";
import { chartWindows } from "../../views/dashboard-charts.js";

/** Nothing the product records is older than this; it also keeps date arithmetic far from its limits. */
const EARLIEST = Date.UTC(2000, 0, 1);

/** GET /v1/admin/dashboard/charts (docs/api.md#dashboard-charts). */
export const dashboardChartsQuery = z.object({
  window: z.enum(chartWindows).default("24h"),
  /** The reference time (default now): the window ends with the bucket that holds it. Not in the future (checked by the service). */
  until: timestampField
    .refine((d) => d.getTime() >= EARLIEST, { message: "must not be before 2000-01-01T00:00:00Z" })
    .optional(),
});
export type DashboardChartsQuery = z.output<typeof dashboardChartsQuery>;
