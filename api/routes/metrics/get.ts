import { z } from "zod";
import { defineRoute } from "../../http/route.js";
import { std } from "../docs.js";

/**
 * Prometheus metrics of this API process (README "Observability"). Admin only on the main
 * listener: the series name hosts, queues and routes of the whole installation. A scraper without
 * a token uses METRICS_LISTEN_ADDR (a listener of its own, on a private address) instead.
 */
export const metricsRoute = defineRoute({
  method: "get",
  path: "/metrics",
  access: "admin",
  summary: "Prometheus metrics of this API process",
  tags: ["health"],
  responses: {
    200: { description: "Prometheus text exposition format", content: { "text/plain": { schema: z.string() } } },
    401: std[401],
    403: std[403],
  },
  handler: async ({ deps }) => {
    const { registry } = deps.metrics;
    return new Response(await registry.metrics(), {
      status: 200,
      headers: { "content-type": registry.contentType, "cache-control": "no-store" },
    });
  },
});
