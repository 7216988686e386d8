import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateWgKeyPair } from "../../shared/services/egress/wg-keys.js";
import { type ApiHarness, type TestUser, createApiHarness, findSecrets } from "../../shared/test/api-harness.js";
import { type HostStatus, insertHostRow } from "../../shared/test/rows.js";

/**
 * Bindings API (docs/api.md#bindings at the HTTP level). Hosts are
 * fixture rows in a given status; the worker that would apply the egress is not part of this
 * suite, so item 78 is checked up to the `host.apply-egress` task it enqueues.
 */
let h: ApiHarness;
let admin: string;
let adminId: string;
let user: TestUser;
const secrets: string[] = [];

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  const [row] = await h.database.sql<{ id: string }[]>`select id from users where role = 'admin'`;
  adminId = row!.id;
  user = await h.createUser();
});
afterAll(async () => {
  await h?.close();
});

const sql = () => h.database.sql;
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

let ipSeq = 0;
const nextIp = () => {
  const n = ipSeq++;
  return `${["192.0.2", "198.51.100", "203.0.113"][n % 3]}.${1 + Math.floor(n / 3)}`;
};

/** An egress IP created through the API (a proxy, or a WireGuard one every third time). */
async function egress(opts: { status?: "available" | "disabled" } = {}): Promise<{ id: string; ip_address: string }> {
  const password = `pw-${randomBytes(8).toString("hex")}`;
  secrets.push(password);
  const wg = ipSeq % 3 === 2;
  const body = wg
    ? {
        label: "wg",
        ip_address: nextIp(),
        tunnel_type: "wireguard",
        wg_endpoint: "vpn.example.test:51820",
        wg_public_key: generateWgKeyPair().publicKey,
        wg_dns_server: "192.0.2.53",
        wg_peer_address: "10.0.0.2/32",
        status: opts.status,
      }
    : {
        label: "px",
        ip_address: nextIp(),
        tunnel_type: "proxy",
        status: opts.status,
        proxy_config: { type: "shadowsocks", server: "proxy.example.test", server_port: 8388, method: "aes-128-gcm", password },
      };
  const res = await h.request("POST", "/v1/admin/egress-ips", { token: admin, body });
  expect(res.status, res.text).toBe(201);
  return res.body.egress_ip;
}

const host = (status: HostStatus = "running") => insertHostRow(sql(), { status });
const bind = (host_id: unknown, egress_ip_id: unknown, token = admin) =>
  h.request("POST", "/v1/admin/bindings", { token, body: { host_id, egress_ip_id } });
const unbind = (id: string, token = admin) => h.request("DELETE", `/v1/admin/bindings/${id}`, { token });

async function tasksOfHost(hostId: string) {
  return sql()<{ id: string; kind: string; status: string; host_id: string; egress_ip_id: string | null; requested_by: string }[]>`
    select id, kind, status, host_id, egress_ip_id, requested_by from tasks where host_id = ${hostId} order by created_at, id`;
}

async function hostEvents(hostId: string, type: string) {
  return sql()<{ type: string; level: string; actor_id: string | null; user_id: string | null; host_id: string | null; task_id: string | null; metadata: Record<string, unknown> }[]>`
    select type, level, actor_id, user_id, host_id, task_id, metadata from events
    where host_id = ${hostId} and type = ${type} order by created_at, id`;
}

const bindingRows = async (where: { hostId?: string; egressId?: string }) =>
  sql()<{ id: string }[]>`
    select id from host_egress_bindings
    where ${where.hostId ? sql()`host_id = ${where.hostId}` : sql()`egress_ip_id = ${where.egressId!}`}`;

describe("security", () => {
  it("answers 401 without a token and 403 to a user, binding nothing", async () => {
    const hst = await host();
    const e = await egress();
    for (const token of [undefined, user.token]) {
      const res = await h.request("POST", "/v1/admin/bindings", { token, body: { host_id: hst.id, egress_ip_id: e.id } });
      expect(res.status, res.text).toBe(token ? 403 : 401);
      expect(res.body.code).toBe(token ? "forbidden" : "unauthorized");
    }
    expect(await bindingRows({ hostId: hst.id })).toEqual([]);
    const made = await bind(hst.id, e.id);
    for (const token of [undefined, user.token]) {
      const res = await h.request("DELETE", `/v1/admin/bindings/${made.body.binding.id}`, { token });
      expect(res.status, res.text).toBe(token ? 403 : 401);
    }
    expect(await bindingRows({ hostId: hst.id })).toHaveLength(1);
  });
});

describe("POST /v1/admin/bindings", () => {
  it("binds a running host: 201 with binding and task_id, a host.apply-egress task and an event (78)", async () => {
    const hst = await host("running");
    const e = await egress();
    const res = await bind(hst.id, e.id);
    expect(res.status, res.text).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(["binding", "task_id"]);
    const b = res.body.binding;
    expect(Object.keys(b).sort()).toEqual(["created_at", "egress_ip_id", "host_id", "id"]);
    expect(b).toMatchObject({ host_id: hst.id, egress_ip_id: e.id });
    expect(b.created_at).toMatch(TS);

    const [task, ...more] = await tasksOfHost(hst.id);
    expect(more).toEqual([]);
    expect(task).toEqual({
      id: res.body.task_id,
      kind: "host.apply-egress",
      status: "pending",
      host_id: hst.id,
      egress_ip_id: e.id,
      requested_by: adminId,
    });
    expect((await h.queues.get("host-ops").getJob(task!.id))?.name).toBe("host.apply-egress");

    const [ev, ...others] = await hostEvents(hst.id, "binding.created");
    expect(others).toEqual([]);
    expect(ev).toMatchObject({ level: "info", actor_id: adminId, user_id: hst.userId, host_id: hst.id, task_id: task!.id });
    expect(ev!.metadata).toEqual({ binding_id: b.id, egress_ip_id: e.id, ip_address: e.ip_address });

    // Both sides show the binding.
    const eg = await h.request("GET", `/v1/admin/egress-ips/${e.id}`, { token: admin });
    expect(eg.body.egress_ip).toMatchObject({ bound_host_id: hst.id, binding_id: b.id });
    const hosts = await h.request("GET", `/v1/admin/hosts?user_id=${hst.userId}`, { token: admin });
    expect(hosts.body.hosts[0]).toMatchObject({ id: hst.id, binding_id: b.id, egress: { id: e.id, ip_address: e.ip_address } });
  });

  it("enqueues only for running, starting, creating and rebuilding hosts", async () => {
    for (const status of ["running", "starting", "creating", "rebuilding"] as HostStatus[]) {
      const hst = await host(status);
      const res = await bind(hst.id, (await egress()).id);
      expect(res.status, `${status}: ${res.text}`).toBe(201);
      expect(res.body.task_id, status).toBeDefined();
      expect((await tasksOfHost(hst.id)).map((t) => t.kind)).toEqual(["host.apply-egress"]);
    }
    for (const status of ["pending", "stopped", "stopping", "failed"] as HostStatus[]) {
      const hst = await host(status);
      const res = await bind(hst.id, (await egress()).id);
      expect(res.status, `${status}: ${res.text}`).toBe(201);
      expect(Object.keys(res.body), status).toEqual(["binding"]);
      expect(await tasksOfHost(hst.id)).toEqual([]);
      const [ev] = await hostEvents(hst.id, "binding.created");
      expect(ev!.task_id).toBeNull();
    }
  });

  it("answers 200 with the same binding, no task and no event for the same pair again (79)", async () => {
    const hst = await host("running");
    const e = await egress();
    const first = await bind(hst.id, e.id);
    expect(first.status, first.text).toBe(201);
    const again = await bind(hst.id.toUpperCase(), e.id);
    expect(again.status, again.text).toBe(200);
    expect(again.body).toEqual({ binding: first.body.binding });
    expect(await tasksOfHost(hst.id)).toHaveLength(1);
    expect(await hostEvents(hst.id, "binding.created")).toHaveLength(1);
    // Idempotency comes before the disabled check: the binding exists, nothing is asked.
    await sql()`update egress_ips set status = 'disabled' where id = ${e.id}`;
    expect((await bind(hst.id, e.id)).status).toBe(200);
  });

  it("answers the conflicts and not-founds of the docs/api.md#bindings table, in its order (80)", async () => {
    const hostA = await host();
    const hostB = await host();
    const e1 = await egress();
    const e2 = await egress();
    expect((await bind(hostA.id, e1.id)).status).toBe(201);

    const cases: [string, unknown, unknown, number, string][] = [
      ["egress bound elsewhere", hostB.id, e1.id, 409, "egress_ip_already_bound"],
      ["host already bound", hostA.id, e2.id, 409, "host_already_bound"],
      ["unknown host", randomUUID(), e2.id, 404, "host_not_found"],
      ["unknown egress", hostB.id, randomUUID(), 404, "egress_ip_not_found"],
      ["both unknown: the host first", randomUUID(), randomUUID(), 404, "host_not_found"],
    ];
    for (const [name, hid, eid, status, code] of cases) {
      const res = await bind(hid, eid);
      expect(res.status, `${name}: ${res.text}`).toBe(status);
      expect(res.body.code, name).toBe(code);
    }
    const disabled = await egress({ status: "disabled" });
    const dis = await bind(hostB.id, disabled.id);
    expect(dis.status, dis.text).toBe(409);
    expect(dis.body.code).toBe("egress_ip_disabled");
    // host_already_bound precedes egress_ip_disabled; egress_ip_already_bound does too.
    expect((await bind(hostA.id, disabled.id)).body.code).toBe("host_already_bound");
    await sql()`update egress_ips set status = 'disabled' where id = ${e1.id}`;
    expect((await bind(hostB.id, e1.id)).body.code).toBe("egress_ip_already_bound");
    await sql()`update egress_ips set status = 'available' where id = ${e1.id}`;

    // A deleting host: 409 host_deleting, even for its existing pair and before other conflicts.
    const gone = await host("deleting");
    const e3 = await egress();
    const del = await bind(gone.id, e3.id);
    expect(del.status, del.text).toBe(409);
    expect(del.body.code).toBe("host_deleting");
    expect((await bind(gone.id, e1.id)).body.code).toBe("host_deleting");
    expect((await bind(gone.id, randomUUID())).body.code).toBe("egress_ip_not_found");

    expect(await bindingRows({ hostId: hostB.id })).toEqual([]);
    expect(await bindingRows({ egressId: e2.id })).toEqual([]);
  });

  it("answers 400 for missing, malformed or extra fields", async () => {
    const hst = await host();
    const e = await egress();
    const bad: [unknown, string[]][] = [
      [{}, ["egress_ip_id", "host_id"]],
      [{ host_id: hst.id }, ["egress_ip_id"]],
      [{ egress_ip_id: e.id }, ["host_id"]],
      [{ host_id: "host-uuid", egress_ip_id: "egress-ip-uuid" }, ["egress_ip_id", "host_id"]],
      [{ host_id: 1, egress_ip_id: null }, ["egress_ip_id", "host_id"]],
      [{ host_id: hst.id, egress_ip_id: e.id, id: randomUUID() }, ["id"]],
    ];
    for (const [body, fields] of bad) {
      const res = await h.request("POST", "/v1/admin/bindings", { token: admin, body });
      expect(res.status, res.text).toBe(400);
      expect(res.body.code).toBe("invalid_request");
      expect((res.body.details as { field: string }[]).map((d) => d.field).sort(), res.text).toEqual(fields);
    }
    const raw = await h.request("POST", "/v1/admin/bindings", { token: admin, rawBody: "not json" });
    expect(raw.status).toBe(400);
    expect(raw.body.details[0].field).toBe("body");
    expect(await bindingRows({ hostId: hst.id })).toEqual([]);
  });

  it("lets exactly one of many concurrent conflicting requests win, never answering 500 (81)", async () => {
    // Many hosts racing for one egress IP.
    const e = await egress();
    const racers = await Promise.all(Array.from({ length: 8 }, () => host("running")));
    const a = await Promise.all(racers.map((r) => bind(r.id, e.id)));
    expect(a.map((r) => r.status).sort(), a.map((r) => r.text).join("\n")).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    expect(a.filter((r) => r.status === 409).every((r) => r.body.code === "egress_ip_already_bound")).toBe(true);
    expect(await bindingRows({ egressId: e.id })).toHaveLength(1);

    // One host racing for many egress IPs.
    const hst = await host("running");
    const eggs = await Promise.all(Array.from({ length: 8 }, () => egress()));
    const b = await Promise.all(eggs.map((x) => bind(hst.id, x.id)));
    expect(b.map((r) => r.status).sort(), b.map((r) => r.text).join("\n")).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    expect(b.filter((r) => r.status === 409).every((r) => r.body.code === "host_already_bound")).toBe(true);
    expect(await tasksOfHost(hst.id)).toHaveLength(1);

    // The same pair many times: one 201, the rest 200 with the same binding.
    const hst2 = await host("running");
    const e2 = await egress();
    const c = await Promise.all(Array.from({ length: 6 }, () => bind(hst2.id, e2.id)));
    expect(c.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
    expect(new Set(c.map((r) => r.body.binding.id)).size).toBe(1);
    expect(await tasksOfHost(hst2.id)).toHaveLength(1);
  });
});

describe("DELETE /v1/admin/bindings/{bindingID}", () => {
  it("unbinds a running host with a host.apply-egress task (fail closed) and an event", async () => {
    const hst = await host("running");
    const e = await egress();
    const made = await bind(hst.id, e.id);
    const res = await unbind(made.body.binding.id);
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");
    const tasks = await tasksOfHost(hst.id);
    expect(tasks.map((t) => [t.kind, t.requested_by])).toEqual([
      ["host.apply-egress", adminId],
      ["host.apply-egress", adminId],
    ]);
    // The second task names no egress: there is none to apply, only blocked mode.
    expect(tasks[1]!.egress_ip_id).toBeNull();
    const [ev] = await hostEvents(hst.id, "binding.deleted");
    expect(ev).toMatchObject({ level: "info", actor_id: adminId, user_id: hst.userId, task_id: tasks[1]!.id });
    expect(ev!.metadata).toEqual({ binding_id: made.body.binding.id, egress_ip_id: e.id, ip_address: e.ip_address });
    const eg = await h.request("GET", `/v1/admin/egress-ips/${e.id}`, { token: admin });
    expect(eg.body.egress_ip).toMatchObject({ bound_host_id: null, binding_id: null });
    // Both are free again.
    expect((await bind(hst.id, (await egress()).id)).status).toBe(201);
    expect((await bind((await host()).id, e.id)).status).toBe(201);
  });

  it("unbinds a stopped host without a task", async () => {
    const hst = await host("stopped");
    const made = await bind(hst.id, (await egress()).id);
    expect((await unbind(made.body.binding.id)).status).toBe(204);
    expect(await tasksOfHost(hst.id)).toEqual([]);
    expect(await hostEvents(hst.id, "binding.deleted")).toHaveLength(1);
  });

  it("answers 404 binding_not_found for unknown, malformed and already deleted bindings (83)", async () => {
    const hst = await host("stopped");
    const made = await bind(hst.id, (await egress()).id);
    expect((await unbind(made.body.binding.id)).status).toBe(204);
    for (const id of [made.body.binding.id, randomUUID(), "not-a-uuid", "0"]) {
      const res = await unbind(id);
      expect(res.status, `${id}: ${res.text}`).toBe(404);
      expect(res.body.code).toBe("binding_not_found");
    }
  });

  it("keeps secrets out of responses, logs and events", async () => {
    expect(secrets.length).toBeGreaterThan(10);
    expect(findSecrets(h.responses, secrets)).toEqual([]);
    expect(findSecrets(h.logs, secrets)).toEqual([]);
    const events = await sql()`select * from events`;
    expect(findSecrets([JSON.stringify(events)], secrets)).toEqual([]);
  });
});
