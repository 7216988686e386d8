import { and, count, desc, eq, gte, lt, type SQL } from "drizzle-orm";
import { z } from "zod";
import { type AttestationRow, attestationVerdicts, egressAttestations } from "../../db/schema/index.js";
import { paginationShape, timestampField, uuidField } from "../../validation.js";
import type { AttestationView } from "../../views/index.js";
import type { ServiceContext } from "../context.js";
import { sinceNotAfterUntil } from "../events/schemas.js";

/** `GET /v1/admin/attestations` (docs/api.md#attestations): the history of continuous egress attestation. */
export const listAttestationsQuery = z
  .object({
    ...paginationShape,
    host_id: uuidField.optional(),
    egress_ip_id: uuidField.optional(),
    verdict: z.enum(attestationVerdicts).optional(),
    since: timestampField.optional(),
    until: timestampField.optional(),
  })
  .superRefine(sinceNotAfterUntil);
export type ListAttestationsQuery = z.output<typeof listAttestationsQuery>;

export function renderAttestation(a: AttestationRow): AttestationView {
  return {
    id: a.id,
    host_id: a.hostId,
    user_id: a.userId,
    egress_ip_id: a.egressIpId,
    engine_id: a.engineId,
    attested_at: a.attestedAt.toISOString(),
    verdict: a.verdict,
    error_code: a.errorCode,
    expected_ip: a.expectedIp,
    observed_ip: a.observedIp,
    dns_sources: a.dnsSources ?? [],
    latency_ms: a.latencyMs,
    duration_ms: a.durationMs,
    action: a.action,
    checks: a.checks ?? {},
  };
}

export async function listAttestations({ ctx, query }: { ctx: ServiceContext; query: ListAttestationsQuery }) {
  const conds: SQL[] = [];
  if (query.host_id) conds.push(eq(egressAttestations.hostId, query.host_id));
  if (query.egress_ip_id) conds.push(eq(egressAttestations.egressIpId, query.egress_ip_id));
  if (query.verdict) conds.push(eq(egressAttestations.verdict, query.verdict));
  if (query.since) conds.push(gte(egressAttestations.attestedAt, query.since));
  // As for events: `until` includes its whole millisecond.
  if (query.until) conds.push(lt(egressAttestations.attestedAt, new Date(query.until.getTime() + 1)));
  const where = conds.length ? and(...conds) : undefined;
  const rows = await ctx.db
    .select()
    .from(egressAttestations)
    .where(where)
    .orderBy(desc(egressAttestations.attestedAt), desc(egressAttestations.id))
    .limit(query.limit)
    .offset(query.offset);
  const [counted] = await ctx.db.select({ total: count() }).from(egressAttestations).where(where);
  return { attestations: rows.map(renderAttestation), total: counted?.total ?? 0, limit: query.limit, offset: query.offset };
}
