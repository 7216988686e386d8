import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, type TestUser, createApiHarness } from "../../shared/test/api-harness.js";
import { insertEgressRow, insertHostRow, insertTaskRow } from "../../shared/test/rows.js";

/**
 * GET /v1/admin/dashboard/charts (docs/api.md#dashboard-charts) against rows placed around a fixed
 * reference time: the query names it with `until`, so the buckets never depend on when the suite
 * runs. Rows sit on both edges of the window ([since, until)), and the expected percentiles are
 * percentile_cont's linear interpolation worked out by hand.
 */
let h: ApiHarness;
let admin: string;
let tokenUser: TestUser;

// 12:30 UTC: the 24 h window is 13:00 the day before … 13:00 (the end of the hour holding REF).
const REF = "2026-03-10T12:30:00.000Z";
const at = (s: string) => new Date(s);
const E1 = "chartseng1";
const E2 = "chartseng2";

let egressA: string;
let egressB: string;
const egressGone = randomUUID();

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  tokenUser = await h.createUser();
  const sql = h.database.sql;

  // Tasks: [kind, status, started_at, finished_at].
  const tasks: [string, "succeeded" | "failed" | "canceled" | "running", string | null, string | null][] = [
    ["host.start", "succeeded", "2026-03-10T12:00:00.000Z", "2026-03-10T12:00:01.000Z"], // 1000 ms, last hour
    ["host.start", "succeeded", "2026-03-10T12:10:00.000Z", "2026-03-10T12:10:03.000Z"], // 3000 ms
    ["host.start", "failed", "2026-03-10T12:20:00.000Z", "2026-03-10T12:20:02.000Z"], // 2000 ms
    ["host.create", "canceled", null, "2026-03-10T12:25:00.000Z"], // never started: no run time
    ["host.create", "succeeded", "2026-03-09T13:00:00.000Z", "2026-03-09T13:00:10.000Z"], // 10000 ms, first hour (since is inclusive)
    ["egress.test", "succeeded", "2026-03-09T20:30:00.000Z", "2026-03-09T20:30:00.500Z"], // 500 ms, hour 7
    ["host.stop", "succeeded", null, "2026-03-10T13:00:00.000Z"], // at until: outside the 24 h window
    ["host.stop", "failed", null, "2026-03-09T12:59:59.999Z"], // before since
    ["host.start", "running", "2026-03-10T12:29:00.000Z", null], // not ended: never counted
  ];
  for (const [kind, status, started, finished] of tasks) {
    await insertTaskRow(sql, {
      kind,
      status,
      createdAt: at(started ?? finished ?? REF),
      startedAt: started ? at(started) : null,
      finishedAt: finished ? at(finished) : null,
    });
  }

  // Engines and hosts: E1 (max 3) holds two hosts, E2 (unlimited, cordoned) one.
  await sql`insert into engines (id, endpoint, max_hosts) values (${E1}, 'unix:///run/e1.sock', 3)`;
  await sql`insert into engines (id, endpoint, state) values (${E2}, 'unix:///run/e2.sock', 'cordoned')`;
  const h1 = await insertHostRow(sql, { status: "running" });
  const h2 = await insertHostRow(sql, { status: "stopped", desiredState: "stopped" });
  const h3 = await insertHostRow(sql, { status: "failed" });
  await insertHostRow(sql, { status: "running" });
  await sql`update hosts set engine_id = ${E1} where id in (${h1.id}, ${h2.id})`;
  await sql`update hosts set engine_id = ${E2} where id = ${h3.id}`;
  for (const [i, [engine, state]] of ([
    [E1, "ready"],
    [E1, "ready"],
    [E1, "warming"],
    [E2, "draining"],
  ] as const).entries()) {
    await sql`insert into host_pool (id, engine_id, state, short_id, memory_limit_mb, cpu_limit, pids_limit, timezone, home_disk_mb,
        host_key_public, host_key_private_enc, internal_key_public, internal_key_private_enc)
      values (gen_random_uuid(), ${engine}, ${state}, ${`chrt0${i}`}, 4096, 2, 1024, 'UTC', 0, 'k', 'x', 'k', 'x')`;
  }

  // Sessions: two SSH and one desktop in the last hour, one SSH in the first, one at until (outside).
  for (const [kind, started] of [
    ["ssh", "2026-03-10T12:05:00.000Z"],
    ["ssh", "2026-03-10T12:29:59.000Z"],
    ["desktop", "2026-03-10T12:06:00.000Z"],
    ["ssh", "2026-03-09T13:00:00.000Z"],
    ["ssh", "2026-03-10T13:00:00.000Z"],
  ] as const) {
    await sql`insert into sessions (kind, host_id, user_id, login, started_at)
      values (${kind}, ${h1.id}, ${h1.userId}, 'fixture', ${started}::timestamptz)`;
  }

  // Attestations: A passed then failed (latest: failed, dns_leak), and passes again after until
  // (not seen); B passed twice, failed before since (not counted); a deleted egress failed once.
  egressA = await insertEgressRow(sql);
  egressB = await insertEgressRow(sql);
  const atts: [string, "passed" | "failed", string, string | null][] = [
    [egressA, "passed", "2026-03-10T12:00:00.000Z", null],
    [egressA, "failed", "2026-03-10T12:30:00.000Z", "dns_leak"],
    [egressA, "passed", "2026-03-10T13:30:00.000Z", null],
    [egressB, "failed", "2026-03-09T12:00:00.000Z", "exit_ip_mismatch"],
    [egressB, "passed", "2026-03-09T14:00:00.000Z", null],
    [egressB, "passed", "2026-03-10T11:00:00.000Z", null],
    [egressGone, "failed", "2026-03-10T01:00:00.000Z", "egress_unreachable"],
  ];
  for (const [egress, verdict, when, code] of atts) {
    await sql`insert into egress_attestations (host_id, user_id, egress_ip_id, engine_id, attested_at, verdict, error_code, expected_ip, duration_ms)
      values (${h1.id}, ${h1.userId}, ${egress}, ${E1}, ${when}::timestamptz, ${verdict}, ${code}, '198.51.100.7', 42)`;
  }
});
afterAll(async () => {
  await h?.close();
});

async function charts(query: string) {
  const res = await h.request("GET", `/v1/admin/dashboard/charts${query}`, { token: admin });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

/** A dense per-bucket array of `n` entries: `fill` everywhere, `at` overriding some indexes. */
function dense<T>(n: number, fill: () => T, at: Record<number, T>): T[] {
  return Array.from({ length: n }, (_, i) => at[i] ?? fill());
}
const noTasks = (): { succeeded: number; failed: number; canceled: number; p50_ms: number | null; p95_ms: number | null } => ({
  succeeded: 0,
  failed: 0,
  canceled: 0,
  p50_ms: null,
  p95_ms: null,
});
const noSessions = () => ({ ssh: 0, desktop: 0 });

describe("security and validation", () => {
  it("answers 401 without a token and 403 with a user token", async () => {
    const anon = await h.request("GET", "/v1/admin/dashboard/charts");
    expect(anon.status, anon.text).toBe(401);
    expect(anon.body.code).toBe("unauthorized");
    const asUser = await h.request("GET", "/v1/admin/dashboard/charts?window=24h", { token: tokenUser.token });
    expect(asUser.status, asUser.text).toBe(403);
    expect(asUser.body.code).toBe("forbidden");
  });

  it.each([
    ["window=1h", "window"],
    ["window=", "window"],
    ["window=24h&until=yesterday", "until"],
    ["until=2026-03-10T12:30:00", "until"], // no offset
    ["until=1999-12-31T23:59:59Z", "until"],
    ["until=2999-01-01T00:00:00Z", "until"], // the future
  ])("answers 400 in the error envelope for %s", async (q, field) => {
    const res = await h.request("GET", `/v1/admin/dashboard/charts?${q}`, { token: admin });
    expect(res.status, res.text).toBe(400);
    expect(res.body.code, res.text).toBe("invalid_request");
    expect(res.body.details.map((d: { field: string }) => d.field), res.text).toContain(`query.${field}`);
  });
});

describe("GET /v1/admin/dashboard/charts", () => {
  it("aggregates a 24 h window by hour, edges included and excluded exactly", async () => {
    const body = await charts(`?window=24h&until=${REF}`);
    expect(body.window).toBe("24h");
    expect(body.bucket).toBe("hour");
    expect(body.since).toBe("2026-03-09T13:00:00.000Z");
    expect(body.until).toBe("2026-03-10T13:00:00.000Z");
    expect(body.buckets).toHaveLength(24);
    expect(body.buckets[0]).toBe("2026-03-09T13:00:00.000Z");
    expect(body.buckets[7]).toBe("2026-03-09T20:00:00.000Z");
    expect(body.buckets[23]).toBe("2026-03-10T12:00:00.000Z");

    expect(body.tasks.by_bucket).toEqual(
      dense(24, noTasks, {
        0: { succeeded: 1, failed: 0, canceled: 0, p50_ms: 10000, p95_ms: 10000 },
        7: { succeeded: 1, failed: 0, canceled: 0, p50_ms: 500, p95_ms: 500 },
        // Run times 1000, 3000, 2000: p50 2000, p95 2000 + 0.9 × 1000.
        23: { succeeded: 2, failed: 1, canceled: 1, p50_ms: 2000, p95_ms: 2900 },
      }),
    );
    expect(body.tasks.by_kind).toEqual([
      { kind: "egress.test", succeeded: 1, failed: 0, canceled: 0, p50_ms: 500, p95_ms: 500, per_bucket: dense(24, () => 0, { 7: 1 }) },
      { kind: "host.create", succeeded: 1, failed: 0, canceled: 1, p50_ms: 10000, p95_ms: 10000, per_bucket: dense(24, () => 0, { 0: 1, 23: 1 }) },
      { kind: "host.start", succeeded: 2, failed: 1, canceled: 0, p50_ms: 2000, p95_ms: 2900, per_bucket: dense(24, () => 0, { 23: 3 }) },
    ]);

    expect(body.hosts.by_status).toEqual({
      pending: 0,
      creating: 0,
      running: 2,
      stopping: 0,
      stopped: 1,
      starting: 0,
      rebuilding: 0,
      failed: 1,
      deleting: 0,
      unreachable: 0,
    });

    expect(body.sessions.by_bucket).toEqual(dense(24, noSessions, { 0: { ssh: 1, desktop: 0 }, 23: { ssh: 2, desktop: 1 } }));

    const mine = body.engines.filter((e: { id: string }) => e.id === E1 || e.id === E2);
    expect(mine).toEqual([
      { id: E1, state: "active", hosts: 2, max_hosts: 3, pool: { warming: 1, ready: 2, claimed: 0, draining: 0 } },
      { id: E2, state: "cordoned", hosts: 1, max_hosts: null, pool: { warming: 0, ready: 0, claimed: 0, draining: 1 } },
    ]);

    const [labelA] = (await h.database.sql<{ label: string }[]>`select label from egress_ips where id = ${egressA}`).map((r) => r.label);
    const [labelB] = (await h.database.sql<{ label: string }[]>`select label from egress_ips where id = ${egressB}`).map((r) => r.label);
    // Most failures first; a deleted egress (no label) after the named ones with as many.
    expect(body.attestations).toEqual([
      { egress_ip_id: egressA, label: labelA, passed: 1, failed: 1, latest_verdict: "failed", latest_at: "2026-03-10T12:30:00.000Z", latest_error_code: "dns_leak" },
      { egress_ip_id: egressGone, label: null, passed: 0, failed: 1, latest_verdict: "failed", latest_at: "2026-03-10T01:00:00.000Z", latest_error_code: "egress_unreachable" },
      { egress_ip_id: egressB, label: labelB, passed: 2, failed: 0, latest_verdict: "passed", latest_at: "2026-03-10T11:00:00.000Z", latest_error_code: null },
    ]);
  });

  it("aggregates a 7 d window by UTC day", async () => {
    const body = await charts(`?window=7d&until=${REF}`);
    expect(body.bucket).toBe("day");
    expect(body.since).toBe("2026-03-04T00:00:00.000Z");
    expect(body.until).toBe("2026-03-11T00:00:00.000Z");
    expect(body.buckets).toEqual(["04", "05", "06", "07", "08", "09", "10"].map((d) => `2026-03-${d}T00:00:00.000Z`));
    expect(body.tasks.by_bucket).toEqual(
      dense(7, noTasks, {
        // 9 March: host.stop failed (no start), host.create 10000 ms, egress.test 500 ms: p50 5250, p95 500 + 0.95 × 9500.
        5: { succeeded: 2, failed: 1, canceled: 0, p50_ms: 5250, p95_ms: 9525 },
        // 10 March: the three host.start (1000, 3000, 2000 ms), host.create canceled, host.stop at 13:00.
        6: { succeeded: 3, failed: 1, canceled: 1, p50_ms: 2000, p95_ms: 2900 },
      }),
    );
    expect(body.sessions.by_bucket).toEqual(dense(7, noSessions, { 5: { ssh: 1, desktop: 0 }, 6: { ssh: 3, desktop: 1 } }));
    // B's failure on 9 March at 12:00 is inside this window; A's pass at 13:30 on 10 March too.
    const byId = Object.fromEntries(body.attestations.map((a: { egress_ip_id: string }) => [a.egress_ip_id, a]));
    expect(byId[egressA]).toMatchObject({ passed: 2, failed: 1, latest_verdict: "passed", latest_at: "2026-03-10T13:30:00.000Z", latest_error_code: null });
    expect(byId[egressB]).toMatchObject({ passed: 2, failed: 1, latest_verdict: "passed" });
  });

  it("defaults to the 24 h window ending with the current hour, zeros included", async () => {
    const before = Date.now();
    const body = await charts("");
    const after = Date.now();
    expect(body.window).toBe("24h");
    expect(body.buckets).toHaveLength(24);
    expect(body.tasks.by_bucket).toHaveLength(24);
    expect(body.sessions.by_bucket).toHaveLength(24);
    // The last bucket holds the moment of the request.
    const last = Date.parse(body.buckets[23]);
    expect(last).toBeLessThanOrEqual(after);
    expect(Date.parse(body.until)).toBeGreaterThan(before);
    expect(Date.parse(body.until) - Date.parse(body.since)).toBe(24 * 3_600_000);
  });
});
