import { useEffect } from "react";
import { api } from "../../api";
import { Badge, ErrorMessage, Time, useResource } from "../../components";

/**
 * The continuous attestation history of a host or an egress (docs/egress.md#attestation,
 * GET /v1/admin/attestations): one cell per attestation, oldest left, coloured by verdict, with
 * the blocks and recoveries marked; the newest verdict and what it observed spelled out below.
 * Reloaded every 15 s while shown (an attestation is at most one interval apart).
 */

export interface Attestation {
  id: string;
  host_id: string;
  egress_ip_id: string;
  attested_at: string;
  verdict: "passed" | "failed";
  error_code: string | null;
  expected_ip: string;
  observed_ip: string | null;
  dns_sources: string[];
  latency_ms: number | null;
  duration_ms: number;
  action: "none" | "blocked" | "recovered";
}

export function AttestationTimeline({ hostId, egressId }: { hostId?: string; egressId?: string }) {
  const q = hostId ? `host_id=${hostId}` : `egress_ip_id=${egressId}`;
  const list = useResource((signal) => api.get<{ attestations: Attestation[]; total: number }>(`/v1/admin/attestations?${q}&limit=60`, signal), [q]);
  useEffect(() => {
    const t = setInterval(() => list.reload(), 15_000);
    return () => clearInterval(t);
  }, [q]);
  if (list.error) return <ErrorMessage error={list.error} title="Attestations could not be loaded" />;
  if (!list.data) return null;
  const rows = list.data.attestations;
  if (rows.length === 0) return <p className="muted small-text">Not attested since it was bound (attestations run about every few minutes).</p>;
  const latest = rows[0]!;
  const blocked = latest.verdict === "failed";
  return (
    <div className="attestations" data-testid="attestation-timeline">
      <h3>Continuous attestation</h3>
      <ol className="attest-strip" aria-label={`Last ${rows.length} attestations, oldest first`}>
        {[...rows].reverse().map((a) => (
          <li
            key={a.id}
            className={`attest-cell attest-${a.verdict}${a.action !== "none" ? ` attest-${a.action}` : ""}`}
            title={`${new Date(a.attested_at).toLocaleString()} — ${a.verdict}${a.error_code ? ` (${a.error_code})` : ""}; exit ${a.observed_ip ?? "none"}${a.action !== "none" ? `; ${a.action}` : ""}`}
          >
            <span className="visually-hidden">
              {a.attested_at}: {a.verdict}
              {a.error_code ? ` ${a.error_code}` : ""}
              {a.action !== "none" ? `, ${a.action}` : ""}
            </span>
          </li>
        ))}
      </ol>
      <p className="small-text">
        Latest <Badge value={latest.verdict} /> <Time value={latest.attested_at} />
        {blocked ? (
          <>
            {" "}
            — <strong>the host is blocked</strong> ({latest.error_code}) until an attestation passes again; SSH and the desktop still work.
          </>
        ) : null}
      </p>
      <p className="small-text muted">
        Exit <span className="mono">{latest.observed_ip ?? "none seen"}</span> (declared <span className="mono">{latest.expected_ip}</span>) · DNS seen from{" "}
        <span className="mono">{latest.dns_sources.length ? latest.dns_sources.join(", ") : "nobody"}</span>
        {latest.latency_ms !== null ? ` · ${latest.latency_ms} ms` : ""}
      </p>
    </div>
  );
}
