import { listAttestations, listAttestationsQuery } from "../../../shared/services/egress/attestations.js";
import { attestationView } from "../../../shared/views/index.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, listDoc, std } from "../docs.js";

export const listAttestationsRoute = defineRoute({
  method: "get",
  path: "/v1/admin/attestations",
  access: "admin",
  summary: "List egress attestations (newest first)",
  tags: ["egress"],
  query: listAttestationsQuery,
  responses: { 200: jsonDoc("Attestations", listDoc("attestations", attestationView)), 400: std[400], 401: std[401], 403: std[403] },
  handler: async ({ c, ctx, query }) => json(c, 200, await listAttestations({ ctx, query })),
});
