import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, type TestUser, createApiHarness } from "../../shared/test/api-harness.js";
import { insertBindingRow, insertEgressRow, insertHostRow, insertTaskRow, insertUserRow } from "../../shared/test/rows.js";

/**
 * Dashboard counts (docs/api.md#dashboard) against a scripted scenario.
 * The database is this file's own, so every count is exact.
 */
let h: ApiHarness;
let admin: string;
let tokenUser: TestUser;

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  // Role `user`, active: part of the scenario below.
  tokenUser = await h.createUser();
});
afterAll(async () => {
  await h?.close();
});

const HOUR = 3_600_000;
const ago = (ms: number) => new Date(Date.now() - ms);

async function stats() {
  const res = await h.request("GET", "/v1/admin/dashboard/stats", { token: admin });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

describe("security", () => {
  it("answers 401 without a token and 403 with a user token", async () => {
    const anon = await h.request("GET", "/v1/admin/dashboard/stats");
    expect(anon.status, anon.text).toBe(401);
    expect(anon.body.code).toBe("unauthorized");
    const asUser = await h.request("GET", "/v1/admin/dashboard/stats", { token: tokenUser.token });
    expect(asUser.status, asUser.text).toBe(403);
    expect(asUser.body.code).toBe("forbidden");
  });
});

describe("GET /v1/admin/dashboard/stats", () => {
  it("counts a scripted scenario exactly, zeros included", async () => {
    // Before the scenario: only the admin (never counted) and the token user.
    expect(await stats()).toEqual({
      active_users: 1,
      running_hosts: 0,
      available_ips: 0,
      users: { total: 1, active: 1, disabled: 0, expired: 0 },
      hosts: { total: 0, pending: 0, creating: 0, starting: 0, running: 0, stopping: 0, stopped: 0, rebuilding: 0, failed: 0, deleting: 0 },
      egress_ips: { total: 0, available: 0, disabled: 0, bound: 0, failing: 0 },
      tasks: { pending: 0, running: 0, failed_24h: 0 },
      pool: { ready: 0, warming: 0 },
      idle: { stopped_hosts: 0, memory_limit_mb: 0, cpu_limit: 0, memory_in_use_mb: 0, stops_24h: 0, wakes_24h: 0 },
    });

    const sql = h.database.sql;
    // Users (one host per user, so hosts hang off these owners).
    const active1 = await insertUserRow(sql);
    const active2 = await insertUserRow(sql, { expiresAt: new Date(Date.now() + 30 * 24 * HOUR) });
    const active3 = await insertUserRow(sql);
    const active4 = await insertUserRow(sql);
    const active5 = await insertUserRow(sql);
    // No host: disabling it later through the API creates no host.stop task.
    const active6 = await insertUserRow(sql);
    const disabled1 = await insertUserRow(sql, { status: "disabled" });
    // Disabled and expired: counts as disabled only.
    const disabled2 = await insertUserRow(sql, { status: "disabled", expiresAt: ago(24 * HOUR) });
    const expired1 = await insertUserRow(sql, { expiresAt: ago(HOUR) });
    // Deleted (its host still being torn down): not counted as a user.
    const deleted1 = await insertUserRow(sql, { deletedAt: ago(HOUR) });

    // Hosts: running 2, starting 1, rebuilding 1, pending 1, stopped 2, failed 1, deleting 1.
    const hRun1 = await insertHostRow(sql, { userId: active1, status: "running" });
    const hRun2 = await insertHostRow(sql, { userId: active2, status: "running" });
    const hStarting = await insertHostRow(sql, { userId: active3, status: "starting" });
    await insertHostRow(sql, { userId: active4, status: "pending" });
    await insertHostRow(sql, { userId: active5, status: "rebuilding" });
    const hStop1 = await insertHostRow(sql, { userId: disabled1, status: "stopped", desiredState: "stopped" });
    await insertHostRow(sql, { userId: disabled2, status: "stopped", desiredState: "stopped" });
    await insertHostRow(sql, { userId: expired1, status: "failed" });
    await insertHostRow(sql, { userId: deleted1, status: "deleting", desiredState: "deleted" });

    // Egress IPs: 2 available and unbound; 2 available and bound (one failing); 1 disabled and
    // failing, unbound; 1 disabled and bound.
    await insertEgressRow(sql, { health: "passing" });
    await insertEgressRow(sql);
    const eBound1 = await insertEgressRow(sql, { health: "passing" });
    const eBound2 = await insertEgressRow(sql, { health: "failing" });
    await insertEgressRow(sql, { status: "disabled", health: "failing" });
    const eDisBound = await insertEgressRow(sql, { status: "disabled" });
    await insertBindingRow(sql, hRun1.id, eBound1);
    await insertBindingRow(sql, hRun2.id, eBound2);
    await insertBindingRow(sql, hStop1.id, eDisBound);

    // Tasks: 2 pending, 1 running, 2 failed within 24 h (one created long ago), plus rows that
    // must not count: failed 2 days ago, succeeded and canceled recently.
    await insertTaskRow(sql, { kind: "host.start", status: "pending", hostId: hStarting.id });
    await insertTaskRow(sql, { kind: "egress.test", status: "pending", egressIpId: eBound1 });
    await insertTaskRow(sql, { kind: "host.start", status: "running", hostId: hStarting.id, startedAt: ago(60_000) });
    await insertTaskRow(sql, { kind: "host.start", status: "failed", errorCode: "image_missing", createdAt: ago(2 * HOUR), finishedAt: ago(HOUR) });
    await insertTaskRow(sql, { kind: "host.create", status: "failed", errorCode: "stale_timeout", createdAt: ago(72 * HOUR), finishedAt: ago(23 * HOUR) });
    await insertTaskRow(sql, { kind: "host.rebuild", status: "failed", errorCode: "ssh_not_ready", createdAt: ago(49 * HOUR), finishedAt: ago(48 * HOUR) });
    await insertTaskRow(sql, { kind: "host.stop", status: "succeeded", finishedAt: ago(HOUR) });
    await insertTaskRow(sql, { kind: "host.start", status: "canceled", errorCode: "canceled", finishedAt: ago(HOUR) });

    // Warm-pool members count apart from hosts; a claimed one is a host already.
    for (const [i, state] of (["ready", "ready", "warming", "claimed", "draining"] as const).entries()) {
      await sql`insert into host_pool (id, state, short_id, memory_limit_mb, cpu_limit, pids_limit, timezone, home_disk_mb,
          host_key_public, host_key_private_enc, internal_key_public, internal_key_private_enc)
        values (gen_random_uuid(), ${state}, ${`pool0${i}`}, 4096, 2, 1024, 'UTC', 0, 'k', 'x', 'k', 'x')`;
    }

    // Stopped for idleness (docs/idle.md#dashboard): one of the stopped hosts, with the memory it
    // used when stopped; a stop and a wake within 24 h, one of each older.
    await sql`update hosts set idle_stopped_at = now() where id = ${hStop1.id}`;
    const idleEvent = (type: string, hostId: string, meta: Record<string, unknown>, at: Date) =>
      sql`insert into events (type, level, message, host_id, metadata, created_at)
        values (${type}, 'info', 'fixture', ${hostId}, ${JSON.stringify(meta)}::jsonb, ${at.toISOString()}::timestamptz)`;
    await idleEvent("host.idle_stopped", hStop1.id, { memory_bytes: 100 * 1024 * 1024 }, ago(30 * HOUR));
    await idleEvent("host.idle_stopped", hStop1.id, { memory_bytes: 200 * 1024 * 1024 }, ago(HOUR));
    await idleEvent("host.woken", hRun1.id, { via: "ssh" }, ago(2 * HOUR));
    await idleEvent("host.woken", hRun1.id, { via: "ssh" }, ago(25 * HOUR));

    expect(await stats()).toEqual({
      active_users: 7,
      running_hosts: 2,
      available_ips: 2,
      users: { total: 10, active: 7, disabled: 2, expired: 1 },
      hosts: { total: 9, pending: 1, creating: 0, starting: 1, running: 2, stopping: 0, stopped: 2, rebuilding: 1, failed: 1, deleting: 1 },
      egress_ips: { total: 6, available: 2, disabled: 2, bound: 3, failing: 2 },
      tasks: { pending: 2, running: 1, failed_24h: 2 },
      pool: { ready: 2, warming: 1 },
      idle: { stopped_hosts: 1, memory_limit_mb: 4096, cpu_limit: 2, memory_in_use_mb: 200, stops_24h: 1, wakes_24h: 1 },
    });

    // Follow the scenario through changes made via the API and by hand.
    const disable = await h.request("PATCH", `/v1/admin/users/${active6}`, { token: admin, body: { status: "disabled" } });
    expect(disable.status, disable.text).toBe(200);
    await sql`update hosts set status = 'stopping' where id = ${hRun1.id}`;
    await sql`delete from host_egress_bindings where host_id = ${hRun1.id}`;
    await sql`update users set expires_at = null where id = ${expired1}`;
    await sql`update tasks set status = 'running', attempt = 1 where status = 'pending' and kind = 'egress.test'`;

    expect(await stats()).toEqual({
      active_users: 7,
      running_hosts: 1,
      available_ips: 3,
      users: { total: 10, active: 7, disabled: 3, expired: 0 },
      hosts: { total: 9, pending: 1, creating: 0, starting: 1, running: 1, stopping: 1, stopped: 2, rebuilding: 1, failed: 1, deleting: 1 },
      egress_ips: { total: 6, available: 3, disabled: 2, bound: 2, failing: 2 },
      tasks: { pending: 1, running: 2, failed_24h: 2 },
      pool: { ready: 2, warming: 1 },
      idle: { stopped_hosts: 1, memory_limit_mb: 4096, cpu_limit: 2, memory_in_use_mb: 200, stops_24h: 1, wakes_24h: 1 },
    });
  });
});
