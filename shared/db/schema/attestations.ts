import { sql } from "drizzle-orm";
import { check, index, integer, jsonb, pgTable, text, uuid } from "drizzle-orm/pg-core";
import { id, ts } from "./columns.js";

export const attestationVerdicts = ["passed", "failed"] as const;
/** What an attestation did to the host: nothing, blocked it (fail closed), or gave it its egress back. */
export const attestationActions = ["none", "blocked", "recovered"] as const;

/**
 * Continuous egress attestation (docs/egress.md#attestation): one row per check of a bound,
 * running host's egress. No foreign keys, like events: the history outlives the host and the
 * binding it describes, and goes only by retention (EGRESS_ATTEST_RETENTION_DAYS).
 */
export const egressAttestations = pgTable(
  "egress_attestations",
  {
    id: id(),
    hostId: uuid().notNull(),
    userId: uuid().notNull(),
    egressIpId: uuid().notNull(),
    engineId: text().notNull(),
    attestedAt: ts().notNull().defaultNow(),
    verdict: text({ enum: attestationVerdicts }).notNull(),
    /** The task error code of the failed check (exit_ip_mismatch, dns_leak, egress_unreachable…). */
    errorCode: text(),
    expectedIp: text().notNull(),
    observedIp: text(),
    /** Resolver addresses the DNS canary saw for the probe's names. */
    dnsSources: jsonb().$type<string[]>().notNull().default([]),
    /** The connectivity check's round trip through the egress. */
    latencyMs: integer(),
    durationMs: integer().notNull(),
    action: text({ enum: attestationActions }).notNull().default("none"),
    /** The three checks' results as the egress test reports them (docs/api.md#egress-test-api). */
    checks: jsonb().$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [
    index("attestations_host_idx").on(t.hostId, t.attestedAt.desc(), t.id.desc()),
    index("attestations_egress_idx").on(t.egressIpId, t.attestedAt.desc(), t.id.desc()),
    index("attestations_at_idx").on(t.attestedAt.desc(), t.id.desc()),
    check("attestations_verdict_ck", sql`${t.verdict} in ('passed','failed')`),
    check("attestations_action_ck", sql`${t.action} in ('none','blocked','recovered')`),
  ],
);

export type AttestationRow = typeof egressAttestations.$inferSelect;
