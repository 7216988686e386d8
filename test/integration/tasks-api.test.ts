import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, type TestUser, createApiHarness } from "../../shared/test/api-harness.js";
import { insertHostRow, insertTaskRow, type HostStatus } from "../../shared/test/rows.js";

/**
 * Task endpoints (docs/api.md#task-object, docs/architecture.md#tasks, docs/api.md#tasks-cancel, API side).
 * Tasks are inserted as rows: the worker that would create and run them is not part of this suite.
 */
let h: ApiHarness;
let admin: string;
let adminId: string;
let user: TestUser;

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

const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const TASK_KEYS = [
  "attempt",
  "cancel_requested",
  "created_at",
  "egress_ip_id",
  "error_code",
  "error_message",
  "finished_at",
  "host_id",
  "id",
  "kind",
  "progress_message",
  "progress_percent",
  "request_id",
  "requested_by",
  "result",
  "started_at",
  "status",
  "steps",
];

const sql = () => h.database.sql;

async function hostRow(id: string) {
  const [row] = await sql()<{ status: string; desired_state: string }[]>`
    select status, desired_state from hosts where id = ${id}`;
  return row!;
}

async function taskRow(id: string) {
  const [row] = await sql()<{ status: string; cancel_requested: boolean; error_code: string | null; finished_at: string | null }[]>`
    select status, cancel_requested, error_code, finished_at from tasks where id = ${id}`;
  return row!;
}

async function taskEvents(taskId: string) {
  return sql()<{ type: string; level: string; actor_id: string | null; user_id: string | null; host_id: string | null; task_id: string | null; metadata: Record<string, unknown> }[]>`
    select type, level, actor_id, user_id, host_id, task_id, metadata from events where task_id = ${taskId} order by created_at, id`;
}

const cancel = (id: string, body?: unknown) =>
  h.request("POST", `/v1/admin/tasks/${id}/cancel`, { token: admin, ...(body === undefined ? {} : { body }) });

describe("security", () => {
  it("answers 401 without a token and 403 with a user token on every task route", async () => {
    const id = await insertTaskRow(sql(), { kind: "host.start" });
    const routes: [string, string][] = [
      ["GET", "/v1/admin/tasks"],
      ["GET", `/v1/admin/tasks/${id}`],
      ["POST", `/v1/admin/tasks/${id}/cancel`],
    ];
    for (const [method, path] of routes) {
      const anon = await h.request(method, path);
      expect(anon.status, `${method} ${path}: ${anon.text}`).toBe(401);
      expect(anon.body.code).toBe("unauthorized");
      const asUser = await h.request(method, path, { token: user.token });
      expect(asUser.status, `${method} ${path}: ${asUser.text}`).toBe(403);
      expect(asUser.body.code).toBe("forbidden");
    }
    // The refused cancel changed nothing.
    expect((await taskRow(id)).status).toBe("pending");
  });
});

describe("GET /v1/admin/tasks", () => {
  // One host with its own ladder of tasks, created at known instants in the far past so that
  // "newest first" is checked against rows no other test touches.
  let hostA: string;
  let hostB: string;
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    hostA = (await insertHostRow(sql(), { status: "running" })).id;
    hostB = (await insertHostRow(sql(), { status: "stopped" })).id;
    const at = (m: number) => new Date(Date.UTC(2001, 0, 1, 0, m));
    ids.a1 = await insertTaskRow(sql(), { kind: "host.create", status: "succeeded", hostId: hostA, createdAt: at(1), finishedAt: at(2) });
    ids.a2 = await insertTaskRow(sql(), { kind: "host.stop", status: "succeeded", hostId: hostA, createdAt: at(3), finishedAt: at(4) });
    ids.a3 = await insertTaskRow(sql(), { kind: "host.start", status: "failed", hostId: hostA, createdAt: at(5), errorCode: "image_missing" });
    ids.a4 = await insertTaskRow(sql(), { kind: "host.start", status: "running", hostId: hostA, createdAt: at(6) });
    ids.b1 = await insertTaskRow(sql(), { kind: "host.start", status: "pending", hostId: hostB, createdAt: at(7) });
  });

  it("lists tasks newest first with exactly the docs/api.md#task-object keys", async () => {
    const res = await h.request("GET", `/v1/admin/tasks?host_id=${hostA}`, { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(["limit", "offset", "tasks", "total"]);
    expect(res.body).toMatchObject({ total: 4, limit: 50, offset: 0 });
    expect(res.body.tasks.map((t: { id: string }) => t.id)).toEqual([ids.a4, ids.a3, ids.a2, ids.a1]);
    for (const t of res.body.tasks) expect(Object.keys(t).sort()).toEqual(TASK_KEYS);
  });

  it("filters by status, kind and host_id, alone and together", async () => {
    const get = async (q: string) => {
      const res = await h.request("GET", `/v1/admin/tasks?${q}`, { token: admin });
      expect(res.status, res.text).toBe(200);
      return res.body as { tasks: { id: string; status: string; kind: string; host_id: string }[]; total: number };
    };
    const byKind = await get(`kind=host.start&host_id=${hostA}`);
    expect(byKind.tasks.map((t) => t.id)).toEqual([ids.a4, ids.a3]);
    expect(byKind.total).toBe(2);

    const byStatus = await get(`status=succeeded&host_id=${hostA}`);
    expect(byStatus.tasks.map((t) => t.id)).toEqual([ids.a2, ids.a1]);

    const all3 = await get(`status=pending&kind=host.start&host_id=${hostB}`);
    expect(all3.tasks.map((t) => t.id)).toEqual([ids.b1]);
    const none = await get(`status=running&host_id=${hostB}`);
    expect(none).toMatchObject({ tasks: [], total: 0 });

    // Without host_id, every row of the status qualifies; each returned row obeys the filter.
    const failed = await get("status=failed");
    expect(failed.tasks.map((t) => t.id)).toContain(ids.a3);
    expect(failed.tasks.every((t) => t.status === "failed")).toBe(true);
    const creates = await get("kind=host.create");
    expect(creates.tasks.every((t) => t.kind === "host.create")).toBe(true);
    expect(creates.tasks.map((t) => t.id)).toContain(ids.a1);

    // Scheduler kinds are kinds too.
    const sweeps = await get("kind=system.sweep");
    expect(sweeps.tasks.every((t) => t.kind === "system.sweep")).toBe(true);

    // Host ids are compared as UUIDs whatever their case.
    const upper = await get(`host_id=${hostB.toUpperCase()}`);
    expect(upper.tasks.map((t) => t.id)).toEqual([ids.b1]);
  });

  it("paginates with limit and offset; total counts every match", async () => {
    const res = await h.request("GET", `/v1/admin/tasks?host_id=${hostA}&limit=2&offset=1`, { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ total: 4, limit: 2, offset: 1 });
    expect(res.body.tasks.map((t: { id: string }) => t.id)).toEqual([ids.a3, ids.a2]);
    const past = await h.request("GET", `/v1/admin/tasks?host_id=${hostA}&offset=10`, { token: admin });
    expect(past.body).toMatchObject({ tasks: [], total: 4 });
    const clamped = await h.request("GET", "/v1/admin/tasks?limit=500", { token: admin });
    expect(clamped.status, clamped.text).toBe(200);
    expect(clamped.body.limit).toBe(200);
  });

  it("rejects bad filters with 400 naming the query field", async () => {
    const cases: [string, string][] = [
      ["host_id=not-a-uuid", "query.host_id"],
      ["status=done", "query.status"],
      ["kind=host.explode", "query.kind"],
      ["limit=0", "query.limit"],
      ["offset=-1", "query.offset"],
    ];
    for (const [q, field] of cases) {
      const res = await h.request("GET", `/v1/admin/tasks?${q}`, { token: admin });
      expect(res.status, `${q}: ${res.text}`).toBe(400);
      expect(res.body.code).toBe("invalid_request");
      expect(res.body.details.map((d: { field: string }) => d.field), res.text).toContain(field);
    }
  });

  it("ignores query parameters it does not define", async () => {
    const res = await h.request("GET", `/v1/admin/tasks?host_id=${hostB}&colour=blue`, { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(res.body.total).toBe(1);
  });
});

describe("GET /v1/admin/tasks/{taskID}", () => {
  it("returns the full task object with its steps", async () => {
    const host = await insertHostRow(sql(), { status: "starting" });
    const steps = [
      { name: "check_images", status: "succeeded", started_at: "2026-05-01T10:00:00.000Z", duration_ms: 12, internal: "x" },
      { name: "start_gateway", status: "running", started_at: "2026-05-01T10:00:00.012Z", duration_ms: null },
    ];
    const id = await insertTaskRow(sql(), {
      kind: "host.start",
      status: "running",
      hostId: host.id,
      requestedBy: adminId,
      attempt: 1,
      progressPercent: 35,
      progressMessage: "starting gateway",
      steps,
      createdAt: new Date("2026-05-01T09:59:59.500Z"),
      startedAt: new Date("2026-05-01T10:00:00.000Z"),
    });
    const res = await h.request("GET", `/v1/admin/tasks/${id}`, { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body)).toEqual(["task"]);
    expect(res.body.task).toEqual({
      id,
      kind: "host.start",
      status: "running",
      host_id: host.id,
      egress_ip_id: null,
      requested_by: adminId,
      request_id: null,
      attempt: 1,
      progress_percent: 35,
      progress_message: "starting gateway",
      error_code: null,
      error_message: null,
      cancel_requested: false,
      result: null,
      created_at: "2026-05-01T09:59:59.500Z",
      started_at: "2026-05-01T10:00:00.000Z",
      finished_at: null,
      steps: [
        { name: "check_images", status: "succeeded", started_at: "2026-05-01T10:00:00.000Z", duration_ms: 12 },
        { name: "start_gateway", status: "running", started_at: "2026-05-01T10:00:00.012Z", duration_ms: null },
      ],
    });
  });

  it("renders an egress test's result and a failed task's error", async () => {
    const egressIpId = randomUUID();
    const id = await insertTaskRow(sql(), {
      kind: "egress.test",
      status: "failed",
      egressIpId,
      errorCode: "egress_ip_mismatch",
      errorMessage: "observed exit IP differs from the declared address",
      result: { ok: false, observed_ip: "203.0.113.9" },
      finishedAt: new Date("2026-05-01T10:00:05.000Z"),
    });
    const res = await h.request("GET", `/v1/admin/tasks/${id}`, { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(res.body.task).toMatchObject({
      host_id: null,
      egress_ip_id: egressIpId,
      error_code: "egress_ip_mismatch",
      result: { ok: false, observed_ip: "203.0.113.9" },
      finished_at: "2026-05-01T10:00:05.000Z",
      steps: [],
    });
    expect(res.body.task.created_at).toMatch(TS);
  });

  it("answers 404 task_not_found for an unknown id and for a path id that is not a UUID", async () => {
    for (const id of [randomUUID(), "not-a-uuid", "1"]) {
      const res = await h.request("GET", `/v1/admin/tasks/${id}`, { token: admin });
      expect(res.status, res.text).toBe(404);
      expect(res.body.code).toBe("task_not_found");
    }
  });
});

describe("POST /v1/admin/tasks/{taskID}/cancel", () => {
  async function pendingStartType(kind: string, hostStatus: HostStatus) {
    const host = await insertHostRow(sql(), { status: hostStatus, desiredState: "running" });
    const id = await insertTaskRow(sql(), { kind, status: "pending", hostId: host.id, requestedBy: adminId });
    return { host, id };
  }

  it("cancels a pending host.start at once: 200 canceled, host stopped, event task.canceled", async () => {
    const { host, id } = await pendingStartType("host.start", "stopped");
    const res = await cancel(id);
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body)).toEqual(["task"]);
    expect(Object.keys(res.body.task).sort()).toEqual(TASK_KEYS);
    expect(res.body.task).toMatchObject({
      id,
      status: "canceled",
      error_code: "canceled",
      cancel_requested: false,
      attempt: 0,
    });
    expect(res.body.task.error_message).toMatch(/^canceled by /);
    expect(res.body.task.finished_at).toMatch(TS);
    expect(await hostRow(host.id)).toEqual({ status: "stopped", desired_state: "stopped" });
    expect(await taskEvents(id)).toEqual([
      {
        type: "task.canceled",
        level: "warn",
        actor_id: adminId,
        user_id: host.userId,
        host_id: host.id,
        task_id: id,
        metadata: { kind: "host.start" },
      },
    ]);
    // Terminal now: a second cancel is a conflict and writes nothing.
    const again = await cancel(id);
    expect(again.status, again.text).toBe(409);
    expect(again.body.code).toBe("task_not_cancelable");
    expect(await taskEvents(id)).toHaveLength(1);
    const read = await h.request("GET", `/v1/admin/tasks/${id}`, { token: admin });
    expect(read.body.task).toEqual(res.body.task);
  });

  it("leaves the host stopped when a pending host.create is canceled", async () => {
    const { host, id } = await pendingStartType("host.create", "pending");
    const res = await cancel(id);
    expect(res.status, res.text).toBe(200);
    expect(res.body.task.status).toBe("canceled");
    expect(await hostRow(host.id)).toEqual({ status: "stopped", desired_state: "stopped" });
  });

  it("stops the host for pending host.rebuild and host.ensure-running too (a failed host included)", async () => {
    for (const [kind, status] of [
      ["host.rebuild", "running"],
      ["host.ensure-running", "failed"],
    ] as const) {
      const { host, id } = await pendingStartType(kind, status);
      const res = await cancel(id);
      expect(res.status, `${kind}: ${res.text}`).toBe(200);
      expect(await hostRow(host.id), kind).toEqual({ status: "stopped", desired_state: "stopped" });
    }
  });

  it("leaves a deleting host deleting", async () => {
    const host = await insertHostRow(sql(), { status: "deleting", desiredState: "deleted" });
    const id = await insertTaskRow(sql(), { kind: "host.ensure-running", status: "pending", hostId: host.id });
    const res = await cancel(id);
    expect(res.status, res.text).toBe(200);
    expect(await hostRow(host.id)).toEqual({ status: "deleting", desired_state: "deleted" });
  });

  it("does not overwrite the status another running task of the host owns, only the desired state", async () => {
    const host = await insertHostRow(sql(), { status: "rebuilding" });
    await insertTaskRow(sql(), { kind: "host.rebuild", status: "running", hostId: host.id });
    const id = await insertTaskRow(sql(), { kind: "host.start", status: "pending", hostId: host.id });
    const res = await cancel(id);
    expect(res.status, res.text).toBe(200);
    expect(await hostRow(host.id)).toEqual({ status: "rebuilding", desired_state: "stopped" });
  });

  it("asks a running host.rebuild to stop: 202 cancel_requested, event once, host untouched", async () => {
    const host = await insertHostRow(sql(), { status: "rebuilding" });
    const id = await insertTaskRow(sql(), { kind: "host.rebuild", status: "running", hostId: host.id, progressPercent: 40 });
    const res = await cancel(id);
    expect(res.status, res.text).toBe(202);
    expect(res.body.task).toMatchObject({ id, status: "running", cancel_requested: true, error_code: null, finished_at: null });
    expect(await taskRow(id)).toMatchObject({ status: "running", cancel_requested: true });
    // The worker stops the containers and sets the host; the API does not touch it.
    expect(await hostRow(host.id)).toEqual({ status: "rebuilding", desired_state: "running" });
    const evs = await taskEvents(id);
    expect(evs).toEqual([
      {
        type: "task.cancel.requested",
        level: "info",
        actor_id: adminId,
        user_id: host.userId,
        host_id: host.id,
        task_id: id,
        metadata: { kind: "host.rebuild" },
      },
    ]);
    // Asking again is idempotent and changes nothing, so no second event.
    const again = await cancel(id);
    expect(again.status, again.text).toBe(202);
    expect(again.body.task.cancel_requested).toBe(true);
    expect(await taskEvents(id)).toHaveLength(1);
  });

  it("cancels egress.test: pending at once (no host), running cooperatively", async () => {
    const egressIpId = randomUUID();
    const pending = await insertTaskRow(sql(), { kind: "egress.test", status: "pending", egressIpId });
    const res = await cancel(pending);
    expect(res.status, res.text).toBe(200);
    expect(res.body.task).toMatchObject({ status: "canceled", error_code: "canceled", host_id: null, egress_ip_id: egressIpId });
    expect((await taskEvents(pending))[0]).toMatchObject({ type: "task.canceled", user_id: null, host_id: null });

    const running = await insertTaskRow(sql(), { kind: "egress.test", status: "running", egressIpId });
    const res2 = await cancel(running);
    expect(res2.status, res2.text).toBe(202);
    expect(res2.body.task).toMatchObject({ status: "running", cancel_requested: true });
  });

  it("refuses kinds that carry safety work, pending or running: 409 task_not_cancelable, nothing changed", async () => {
    const cases: [string, "pending" | "running"][] = [
      ["host.delete", "pending"],
      ["host.delete", "running"],
      ["host.stop", "pending"],
      ["host.stop", "running"],
      ["host.apply-egress", "pending"],
      ["host.sync-keys", "running"],
      ["system.reconcile", "running"],
      ["system.sweep", "pending"],
    ];
    for (const [kind, status] of cases) {
      const host = await insertHostRow(sql(), { status: "running" });
      const id = await insertTaskRow(sql(), { kind, status, hostId: kind.startsWith("host.") ? host.id : null });
      const res = await cancel(id);
      expect(res.status, `${kind} ${status}: ${res.text}`).toBe(409);
      expect(res.body.code).toBe("task_not_cancelable");
      expect(await taskRow(id)).toMatchObject({ status, cancel_requested: false, error_code: null });
      expect(await hostRow(host.id)).toEqual({ status: "running", desired_state: "running" });
      expect(await taskEvents(id)).toEqual([]);
    }
  });

  it("refuses finished tasks of cancelable kinds with 409", async () => {
    for (const status of ["succeeded", "failed", "canceled"] as const) {
      const host = await insertHostRow(sql(), { status: "running" });
      const id = await insertTaskRow(sql(), { kind: "host.start", status, hostId: host.id, finishedAt: new Date() });
      const res = await cancel(id);
      expect(res.status, `${status}: ${res.text}`).toBe(409);
      expect(res.body.code).toBe("task_not_cancelable");
      expect((await taskRow(id)).status).toBe(status);
      expect(await hostRow(host.id)).toEqual({ status: "running", desired_state: "running" });
    }
  });

  it("answers 404 task_not_found for unknown and non-UUID ids", async () => {
    for (const id of [randomUUID(), "nope"]) {
      const res = await cancel(id);
      expect(res.status, res.text).toBe(404);
      expect(res.body.code).toBe("task_not_found");
    }
  });

  it("takes no body: `{}` or nothing is fine, any field is 400 (before the 404)", async () => {
    const { id } = await pendingStartType("host.start", "stopped");
    const bad = await cancel(id, { force: true });
    expect(bad.status, bad.text).toBe(400);
    expect(bad.body.details).toEqual([{ field: "force", message: "unknown field" }]);
    expect((await taskRow(id)).status).toBe("pending");
    const unknown = await cancel(randomUUID(), { force: true });
    expect(unknown.status, unknown.text).toBe(400);
    const ok = await cancel(id, {});
    expect(ok.status, ok.text).toBe(200);
  });

  it("serialises concurrent cancels of one pending task: one 200, the others 409, one event", async () => {
    const { id } = await pendingStartType("host.start", "stopped");
    const results = await Promise.all([cancel(id), cancel(id), cancel(id)]);
    const statuses = results.map((r) => r.status).sort();
    expect(statuses, results.map((r) => r.text).join("\n")).toEqual([200, 409, 409]);
    expect((await taskEvents(id)).map((e) => e.type)).toEqual(["task.canceled"]);
  });
});
