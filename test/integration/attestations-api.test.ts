import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";

/** GET /v1/admin/attestations (docs/api.md#attestations): filters, order, pagination, validation, access. */

let h: ApiHarness;
let admin: string;
const hostA = randomUUID();
const hostB = randomUUID();
const egressA = randomUUID();
const egressB = randomUUID();
const user = randomUUID();
const base = Date.parse("2026-03-01T12:00:00Z");
const at = (minutes: number) => new Date(base + minutes * 60_000);

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  // Host A: 5 attestations a minute apart, the 4th failed and blocked, the 5th recovered; host B: 2 passes.
  const rows = [
    ...[0, 1, 2, 3, 4].map((m) => ({ host: hostA, egress: egressA, m, failed: m === 3, action: m === 3 ? "blocked" : m === 4 ? "recovered" : "none" })),
    ...[0, 2].map((m) => ({ host: hostB, egress: egressB, m, failed: false, action: "none" })),
  ];
  for (const r of rows) {
    await h.database.sql`insert into egress_attestations
      (host_id, user_id, egress_ip_id, engine_id, attested_at, verdict, error_code, expected_ip, observed_ip, dns_sources, latency_ms, duration_ms, action)
      values (${r.host}, ${user}, ${r.egress}, 'default', ${at(r.m).toISOString()}, ${r.failed ? "failed" : "passed"}, ${r.failed ? "egress_ip_mismatch" : null},
              '203.0.113.21', ${r.failed ? "203.0.113.77" : "203.0.113.21"}, '["203.0.113.21"]'::jsonb, 12, 1500, ${r.action})`;
  }
});
afterAll(async () => {
  await h?.close();
});

const list = async (q: string, token = admin) => h.request("GET", `/v1/admin/attestations?${q}`, { token });

describe("the attestation history", () => {
  it("lists a host's attestations newest first with every field", async () => {
    const r = await list(`host_id=${hostA}`);
    expect(r.status, r.text).toBe(200);
    expect(r.body.total).toBe(5);
    expect(r.body.attestations.map((a: { attested_at: string }) => a.attested_at)).toEqual([4, 3, 2, 1, 0].map((m) => at(m).toISOString()));
    const failed = r.body.attestations[1];
    expect(failed).toMatchObject({
      host_id: hostA,
      user_id: user,
      egress_ip_id: egressA,
      engine_id: "default",
      verdict: "failed",
      error_code: "egress_ip_mismatch",
      expected_ip: "203.0.113.21",
      observed_ip: "203.0.113.77",
      dns_sources: ["203.0.113.21"],
      latency_ms: 12,
      duration_ms: 1500,
      action: "blocked",
    });
    expect(r.body.attestations[0].action).toBe("recovered");
  });

  it("filters by egress, verdict and time, and pages", async () => {
    expect((await list(`egress_ip_id=${egressB}`)).body.total).toBe(2);
    const failed = await list(`host_id=${hostA}&verdict=failed`);
    expect(failed.body.attestations.map((a: { action: string }) => a.action)).toEqual(["blocked"]);
    const window = await list(`host_id=${hostA}&since=${at(1).toISOString()}&until=${at(2).toISOString()}`);
    expect(window.body.total).toBe(2);
    const page = await list(`host_id=${hostA}&limit=2&offset=2`);
    expect(page.body.attestations.map((a: { attested_at: string }) => a.attested_at)).toEqual([at(2), at(1)].map((d) => d.toISOString()));
  });

  it("refuses bad queries with 400 in the envelope, never 500", async () => {
    const outOfRange = ["since=0000-01-01T00:00:00Z", "since=0001-01-01T00:00:00%2B01:00", "until=9999-12-31T23:59:59-23:59"];
    for (const q of ["verdict=maybe", "host_id=nope", `since=${at(3).toISOString()}&until=${at(1).toISOString()}`, "limit=0", "since=yesterday", ...outOfRange]) {
      const r = await list(q);
      expect(r.status, `${q}: ${r.text}`).toBe(400);
      expect(r.body.code, q).toBe("invalid_request");
    }
    // The same timestamp field guards every list and export that filters by time.
    for (const path of ["/v1/admin/events", "/v1/admin/events/export", "/v1/admin/sessions/export"]) {
      for (const q of outOfRange) {
        const r = await h.request("GET", `${path}?${q}`, { token: admin });
        expect(r.status, `${path}?${q}: ${r.text}`).toBe(400);
      }
    }
  });

  it("is the admin's only: a user gets 403, no token 401", async () => {
    const u = await h.createUser();
    expect((await list(`host_id=${hostA}`, u.token)).status).toBe(403);
    expect((await h.request("GET", "/v1/admin/attestations")).status).toBe(401);
  });
});
