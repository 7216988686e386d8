import { z } from "zod";
import { requestEgressTest } from "../../../shared/services/egress/test.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { egressTestResultView } from "../../../shared/views/index.js";
import { errorDoc, jsonDoc, std } from "../docs.js";

export const testEgressRoute = defineRoute({
  method: "post",
  path: "/v1/admin/egress-ips/{ipID}/test",
  access: "admin",
  summary: "Test an egress: connectivity, exit IP and DNS leak (waits up to 35 s unless ?async=true)",
  tags: ["egress"],
  body: z.strictObject({}),
  bodyOptional: true,
  query: z.object({ async: z.enum(["true", "false"]).optional() }),
  responses: {
    200: jsonDoc("The verdict (same object as last_test and the task's result)", egressTestResultView),
    202: jsonDoc("Still running (or ?async=true): poll the task", z.object({ task_id: z.string() })),
    400: std[400],
    401: std[401],
    403: std[403],
    404: std[404],
    409: { ...std[409], description: "egress_checks_not_configured: no live worker has the egress check endpoints" },
    503: { description: "The test task could not be created", ...errorDoc },
  },
  handler: async ({ c, ctx, deps, params, query }) => {
    const r = await requestEgressTest({
      ctx,
      egressId: params.ipID!,
      waitSeconds: deps.config.EGRESS_TEST_WAIT_SECONDS,
      async: query.async === "true",
    });
    return json(c, r.status, r.body);
  },
});
