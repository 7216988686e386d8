import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type ApiHarness, createApiHarness, type TestUser } from "../../shared/test/api-harness.js";
import { insertBindingRow, insertEgressRow, insertHostRow, insertTaskRow } from "../../shared/test/rows.js";
import { listHosts } from "../../shared/services/hosts/list.js";
import { checkHostListPage, listHostViewRows } from "../../shared/services/hosts/read-queries.js";
import { listHostsQuery } from "../../shared/services/hosts/schemas.js";
import type { ServiceContext } from "../../shared/services/context.js";

/**
 * The fast read paths (issue 12, docs/architecture.md#read-paths): the admin host list served from
 * the stamped cache, the one-query host detail, and the verified-token memo. The cache is checked
 * against the uncached renderer after every kind of write that can change a host object, and no
 * test waits for anything: a stamp is read from Postgres in the request itself, so the answer is
 * right at once or never.
 */

let h: ApiHarness;
let admin: string;
const sql = () => h.database.sql;

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
});
afterAll(async () => {
  await h?.close();
});

/** The uncached rendering of the same query, in the same bytes the route answers with. */
async function rendered(q: Record<string, string>): Promise<string> {
  const ctx: ServiceContext = { ...h.deps, actor: { id: "00000000-0000-4000-8000-000000000000", role: "admin", username: "admin" }, ip: "127.0.0.1" };
  return JSON.stringify(await listHosts({ ctx, query: listHostsQuery.parse(q) }));
}

async function served(q: Record<string, string>): Promise<string> {
  const res = await h.request("GET", `/v1/admin/hosts?${new URLSearchParams(q)}`, { token: admin });
  expect(res.status, res.text).toBe(200);
  return res.text;
}

/** How many of the cache's answers since `spy` was made were bodies (hits). */
const hitsOf = (spy: { mock: { results: { value: unknown }[] } }) => spy.mock.results.filter((r) => r.value !== undefined).length;

/** Served twice: both times exactly what rendering now gives, the second from the cache. */
async function expectFreshThenHit(q: Record<string, string>, label: string): Promise<string> {
  const spy = vi.spyOn(h.deps.hostListCache, "serve");
  try {
    const first = await served(q);
    expect(first, label).toBe(await rendered(q));
    const second = await served(q);
    expect(second, label).toBe(first);
    expect(hitsOf(spy), `${label}: the unchanged second read is a hit`).toBe(1);
    return first;
  } finally {
    spy.mockRestore();
  }
}

describe("GET /v1/admin/hosts from the stamped cache", () => {
  it("serves the stored body while the rows are unchanged and re-renders after every kind of write", async () => {
    const q = { limit: "200" };
    const a = await insertHostRow(sql());
    const b = await insertHostRow(sql());
    await expectFreshThenHit(q, "two hosts");

    const steps: [string, () => Promise<unknown>, (body: string) => void][] = [
      ["a host inserted", () => insertHostRow(sql()), () => {}],
      ["a host's status", () => sql()`update hosts set status = 'stopped' where id = ${a.id}`, (body) => expect(body).toContain('"status":"stopped"')],
      ["the owner renamed", () => sql()`update users set username = 'renamedowner7q' where id = ${a.userId}`, (body) => expect(body).toContain('"username":"renamedowner7q"')],
      [
        "an egress bound",
        async () => insertBindingRow(sql(), b.id, await insertEgressRow(sql(), { health: "passing" })),
        (body) => expect(body).toContain('"health":"passing"'),
      ],
      ["the egress relabelled", () => sql()`update egress_ips set label = 'relabelled-egress-x9' where id in (select egress_ip_id from host_egress_bindings where host_id = ${b.id})`, (body) => expect(body).toContain("relabelled-egress-x9")],
      [
        "the engine's images published",
        async () => {
          await sql()`update hosts set image_id = 'sha256:old-image-q1', gateway_image_id = 'sha256:gw-q1' where id = ${a.id}`;
          await sql()`insert into engine_images (engine_id, host_image, host_image_id, gateway_image, gateway_image_id)
            values ('default', 'h', 'sha256:new-image-q1', 'g', 'sha256:gw-q1')`;
        },
        (body) => expect(body).toContain('"image_outdated":true'),
      ],
      ["the engine's images moved on", () => sql()`update engine_images set host_image_id = 'sha256:old-image-q1' where engine_id = 'default'`, (body) => expect(body).not.toContain('"image_outdated":true')],
      ["the binding removed", () => sql()`delete from host_egress_bindings where host_id = ${b.id}`, (body) => expect(body).not.toContain("relabelled-egress-x9")],
      ["a host deleted", () => sql()`delete from hosts where id = ${b.id}`, (body) => expect(body).not.toContain(b.id)],
      // Nothing rendered changes: a new stamp costs a render, and the answer is the same.
      ["a column nobody renders", () => sql()`update hosts set repair_attempts = repair_attempts + 1 where id = ${a.id}`, () => {}],
    ];
    for (const [label, write, check] of steps) {
      await write();
      check(await expectFreshThenHit(q, label));
    }
  });

  it("keeps serving the stored body across a write that rolled back", async () => {
    const q = { limit: "200" };
    const x = await insertHostRow(sql());
    await expectFreshThenHit(q, "before");
    await sql()
      .begin(async (tx) => {
        await tx`update hosts set status = 'failed' where id = ${x.id}`;
        throw new Error("roll back");
      })
      .catch(() => undefined);
    const spy = vi.spyOn(h.deps.hostListCache, "serve");
    expect(await served(q)).toBe(await rendered(q));
    expect(hitsOf(spy)).toBe(1);
    spy.mockRestore();
  });

  it("answers the caller's own write at once (read-your-writes through the API)", async () => {
    const x = await insertHostRow(sql());
    const q = { limit: "200" };
    await expectFreshThenHit(q, "before the stop");
    const stop = await h.request("POST", `/v1/admin/hosts/${x.id}/stop`, { token: admin });
    expect(stop.status, stop.text).toBe(202);
    const after = JSON.parse(await served(q)) as { hosts: { id: string; desired_state: string }[] };
    expect(after.hosts.find((e) => e.id === x.id)?.desired_state).toBe("stopped");
  });

  it("follows the total when a host outside the page comes or goes, and pages past the end", async () => {
    const page = { limit: "1" };
    const past = { limit: "5", offset: "10000" };
    await expectFreshThenHit(page, "first page");
    await expectFreshThenHit(past, "past the end");
    const before = JSON.parse(await served(page)).total as number;
    // Older than every other host: lands on the last page, not this one.
    const old = await insertHostRow(sql());
    await sql()`update hosts set created_at = '2001-01-01T00:00:00Z' where id = ${old.id}`;
    const grown = await expectFreshThenHit(page, "a host beyond the page");
    expect(JSON.parse(grown).total).toBe(before + 1);
    expect(JSON.parse(await expectFreshThenHit(past, "past the end, grown")).total).toBe(before + 1);
    await sql()`delete from hosts where id = ${old.id}`;
    expect(JSON.parse(await expectFreshThenHit(page, "the host beyond the page gone")).total).toBe(before);
  });

  it("never gives a cached list to a user, and keeps each filter's entry to itself", async () => {
    const u1 = await h.createUser();
    const u2 = await h.createUser();
    const h1 = await insertHostRow(sql(), { userId: u1.id });
    const h2 = await insertHostRow(sql(), { userId: u2.id });
    await expectFreshThenHit({ limit: "200" }, "warm");
    for (const u of [u1, u2]) {
      const res = await h.request("GET", "/v1/admin/hosts?limit=200", { token: u.token });
      expect(res.status, res.text).toBe(403);
      expect(res.body).toStrictEqual({ error: expect.any(String), code: "forbidden" });
    }
    const only1 = JSON.parse(await expectFreshThenHit({ limit: "200", user_id: u1.id }, "user 1's filter"));
    const only2 = JSON.parse(await expectFreshThenHit({ limit: "200", user_id: u2.id }, "user 2's filter"));
    expect(only1.hosts.map((x: { id: string }) => x.id)).toStrictEqual([h1.id]);
    expect(only2.hosts.map((x: { id: string }) => x.id)).toStrictEqual([h2.id]);
    // The portal's own list is not the admin's: each user sees their host only.
    for (const [u, own] of [[u1, h1], [u2, h2]] as const) {
      const res = await h.request("GET", "/v1/user/hosts", { token: u.token });
      expect(res.status, res.text).toBe(200);
      expect(res.body.hosts.map((x: { id: string }) => x.id)).toStrictEqual([own.id]);
      expect(res.body.total).toBe(1);
    }
  });
});

describe("the proofs the cache relies on (shared/services/hosts/read-queries.ts)", () => {
  const page = { limit: 200, offset: 0 };
  /** In one repeatable-read transaction every statement sees the same snapshot: no other writer can interfere. */
  const inOneSnapshot = <T>(fn: (tx: Parameters<Parameters<typeof h.deps.db.transaction>[0]>[0]) => Promise<T>) =>
    h.deps.db.transaction(fn, { isolationLevel: "repeatable read", accessMode: "read only" });

  it("skips the stamp only for the very snapshot it is given, and otherwise stamps exactly as the list does", async () => {
    await insertHostRow(sql());
    await inOneSnapshot(async (tx) => {
      const listed = await listHostViewRows(tx, {}, page);
      expect(listed.snapshot).toMatch(/@\d+:\d+:/);
      const same = await checkHostListPage(tx, {}, page, listed.snapshot);
      expect(same).toStrictEqual({ snapshot: listed.snapshot, stamp: null });
      const other = await checkHostListPage(tx, {}, page, `${listed.snapshot}x`);
      expect(other).toStrictEqual({ snapshot: listed.snapshot, stamp: listed.stamp });
      const none = await checkHostListPage(tx, {}, page, undefined);
      expect(none.stamp).toBe(listed.stamp);
    });
  });

  it("a committed write moves the snapshot on", async () => {
    const before = await inOneSnapshot((tx) => checkHostListPage(tx, {}, page, undefined));
    const x = await insertHostRow(sql());
    const after = await inOneSnapshot((tx) => checkHostListPage(tx, {}, page, before.snapshot));
    expect(after.snapshot).not.toBe(before.snapshot);
    expect(after.stamp).not.toBeNull();
    expect(after.stamp).toContain(x.id);
  });
});

describe("GET /v1/{admin,user}/hosts/{id} in one query", () => {
  it("renders the newest task, the owner check and the egress of the detail", async () => {
    const u = await h.createUser();
    const other = await h.createUser();
    const x = await insertHostRow(sql(), { userId: u.id });
    const mine = `/v1/user/hosts/${x.id}`;
    let res = await h.request("GET", mine, { token: u.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.last_task).toBeNull();
    expect(res.body.egress).toBeNull();
    expect(res.body.access.ssh_host_key === null || typeof res.body.access.ssh_host_key === "string").toBe(true);

    await insertTaskRow(sql(), { kind: "host.create", status: "succeeded", hostId: x.id, createdAt: new Date("2026-01-01T00:00:00Z") });
    const newest = await insertTaskRow(sql(), { kind: "host.stop", status: "running", hostId: x.id, createdAt: new Date("2026-01-02T00:00:00Z") });
    const egress = await insertEgressRow(sql(), { health: "failing" });
    const binding = await insertBindingRow(sql(), x.id, egress);

    res = await h.request("GET", mine.toUpperCase().replace("/V1/USER/HOSTS/", "/v1/user/hosts/"), { token: u.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.last_task).toMatchObject({ id: newest, kind: "host.stop", status: "running" });
    expect(res.body.egress).toMatchObject({ health: "failing", tunnel_type: "proxy" });
    expect(res.body.egress.id).toBeUndefined();
    expect(res.body.user).toStrictEqual({ id: u.id, username: u.username });

    const adminRes = await h.request("GET", `/v1/admin/hosts/${x.id}`, { token: admin });
    expect(adminRes.status, adminRes.text).toBe(200);
    expect(adminRes.body.egress).toMatchObject({ id: egress, binding_id: binding, bound_host_id: x.id });
    expect(adminRes.body.host).toMatchObject({ id: x.id, binding_id: binding });

    // Someone else's host and a malformed id are both plain 404s.
    for (const [token, path] of [
      [other.token, mine],
      [u.token, "/v1/user/hosts/not-a-uuid"],
      [u.token, "/v1/user/hosts/00000000-0000-4000-8000-000000000000"],
    ] as const) {
      const r = await h.request("GET", path, { token });
      expect(r.status, r.text).toBe(404);
      expect(r.body).toStrictEqual({ error: "host not found", code: "host_not_found" });
    }
  });
});

describe("revocation with the verified-token memo (docs/api.md#token-checks)", () => {
  /** A portal read that passes only while the token passes every check. */
  const portal = (u: TestUser) => h.request("GET", "/v1/user/hosts", { token: u.token });
  const expect401 = async (u: TestUser, label: string) => {
    const res = await portal(u);
    expect(res.status, `${label}: ${res.text}`).toBe(401);
    expect(res.body.code).toBe("unauthorized");
  };

  it("refuses a remembered token at once after log-out-everywhere, disabling and a password change", async () => {
    const a = await h.createUser();
    expect((await portal(a)).status).toBe(200);
    expect((await portal(a)).status).toBe(200);
    expect((await h.request("POST", "/v1/auth/logout-all", { token: a.token })).status).toBe(204);
    await expect401(a, "after logout-all");

    const b = await h.createUser();
    expect((await portal(b)).status).toBe(200);
    const off = await h.request("PATCH", `/v1/admin/users/${b.id}`, { token: admin, body: { status: "disabled" } });
    expect(off.status, off.text).toBe(200);
    await expect401(b, "after disabling");
    const on = await h.request("PATCH", `/v1/admin/users/${b.id}`, { token: admin, body: { status: "active" } });
    expect(on.status, on.text).toBe(200);
    await expect401(b, "re-enabling does not revive it");

    const c = await h.createUser();
    expect((await portal(c)).status).toBe(200);
    const changed = await h.request("POST", "/v1/user/change-password", {
      token: c.token,
      body: { old_password: c.password, new_password: `${c.password}-next` },
    });
    expect(changed.status, changed.text).toBe(200);
    await expect401(c, "after a password change");

    // Deleted and expired rows: straight in the database, as the scanners would leave them.
    const d = await h.createUser();
    expect((await portal(d)).status).toBe(200);
    await sql()`update users set expires_at = now() - interval '1 second' where id = ${d.id}`;
    await expect401(d, "after expiry");
    const e = await h.createUser();
    expect((await portal(e)).status).toBe(200);
    await sql()`update users set deleted_at = now() where id = ${e.id}`;
    await expect401(e, "after deletion");
  });
});
