import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness, type TestUser } from "../../shared/test/api-harness.js";
import { insertHostRow, insertTaskRow } from "../../shared/test/rows.js";
import { openSse, type SseClient, type SseEvent } from "../../shared/test/sse-client.js";

/**
 * Live updates (GET /v1/admin/sse, GET /v1/user/sse). No worker runs here: task and host rows are
 * moved the way the worker moves them (plain UPDATEs), and the streams must report exactly that,
 * to exactly the right audience.
 */
let h: ApiHarness;
let admin: string;
let adminId: string;

beforeAll(async () => {
  // Short intervals so that the suite waits on events, not on the production defaults.
  h = await createApiHarness({ SSE_POLL_INTERVAL_MS: "100", SSE_AUTH_RECHECK_SECONDS: "1", SSE_HEARTBEAT_SECONDS: "1" });
  admin = await h.adminToken();
  const [row] = await h.database.sql<{ id: string }[]>`select id from users where role = 'admin'`;
  adminId = row!.id;
});
afterAll(async () => {
  await h?.close();
});

/** A stream read the way the web UI reads it (shared/test/sse-client.ts), with its headers checked. */
async function openStream(path: string, token: string) {
  const s = await openSse(h.app, path, token);
  expect(s.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
  expect(s.headers.get("cache-control")).toBe("no-store");
  return s;
}

async function userWithHost(): Promise<TestUser & { hostId: string; taskId: string }> {
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  return { ...u, hostId: res.body.host.id, taskId: res.body.task_id };
}

/** Waits until `cond()` holds, checking every 10 ms, for at most `timeoutMs`. */
async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The first event matching `pred` among those `s` parsed from index `from` on (so that an older, equal event does not count). */
function seenSince(s: SseClient, from: number, what: string, pred: (e: SseEvent) => boolean): Promise<SseEvent> {
  return s.waitFor(what, (e) => s.events.indexOf(e) >= from && pred(e));
}

/**
 * What the worker does while a task runs: claim, progress with steps, finish; the host follows.
 * With a `witness` (an admin stream: it sees every change the hub delivers), each state is held
 * until the witness has received it, so that every state went through a poll of its own — and so
 * through the hub's audience filter, for every other open stream — instead of being coalesced.
 */
async function runTask(taskId: string, hostId: string, final: "succeeded" | "failed" = "succeeded", witness?: SseClient) {
  const sql = h.database.sql;
  const seen = async (what: string, pred: (e: SseEvent) => boolean, from: number) => {
    if (witness) await seenSince(witness, from, what, pred);
  };
  const isTask = (e: SseEvent) => e.event === "task" && e.data.id === taskId;
  const isHost = (e: SseEvent) => e.event === "host" && e.data.id === hostId;
  let from = witness?.events.length ?? 0;
  await sql`update tasks set status = 'running', attempt = 1, started_at = now(), progress_percent = 10,
            progress_message = 'checking images',
            steps = ${JSON.stringify([{ name: "check_images", status: "running", started_at: new Date().toISOString(), duration_ms: null }])}::jsonb
            where id = ${taskId}`;
  await sql`update hosts set status = 'creating', updated_at = now() where id = ${hostId}`;
  await seen("task running at 10 %", (e) => isTask(e) && e.data.status === "running" && e.data.progress_percent === 10, from);
  await seen("host creating", (e) => isHost(e) && e.data.status === "creating", from);
  from = witness?.events.length ?? 0;
  await sql`update tasks set progress_percent = 60, progress_message = 'starting host' where id = ${taskId}`;
  await seen("task at 60 %", (e) => isTask(e) && e.data.progress_percent === 60, from);
  from = witness?.events.length ?? 0;
  const hostFinal = final === "succeeded" ? "running" : "failed";
  await sql`update tasks set status = ${final}, progress_percent = 100, progress_message = 'done', finished_at = now() where id = ${taskId}`;
  await sql`update hosts set status = ${hostFinal}, updated_at = now() where id = ${hostId}`;
  await seen(`task ${final}`, (e) => isTask(e) && e.data.status === final, from);
  await seen(`host ${hostFinal}`, (e) => isHost(e) && e.data.status === hostFinal, from);
}

let bumps = 0;
/**
 * Barrier for absence checks: two changes of a host the stream `s` may see, the second written
 * only once the first arrived. The hub has one delivery path — a poll, whether a notification or
 * the interval started it; polls never overlap and a stream receives their events in order
 * (api/live/hub.ts, docs/architecture.md#live-updates). A poll whose host read saw the first
 * change read, in that statement and its later task read, every change committed before it; the
 * second change cannot be in that poll's host read (done before it delivered the first), so it
 * comes from a later poll, after everything the first poll delivered. Hence once the second has
 * arrived, every event due for changes made before the barrier has arrived too.
 */
async function barrier(s: SseClient, hostId: string): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const from = s.events.length;
    // A distinct updated_at each time: the hub compares it (to the millisecond) to find a change.
    const at = new Date(Date.UTC(2000, 0, 1) + ++bumps * 1000).toISOString();
    await h.database.sql`update hosts set updated_at = ${at}::timestamptz where id = ${hostId}`;
    await seenSince(s, from, `own host change ${i + 1} (barrier)`, (e) => e.event === "host" && e.data.id === hostId && e.data.updated_at === at);
  }
}

describe("authentication and roles", () => {
  it("answers 401 without a token or with a bad one, on both streams", async () => {
    for (const path of ["/v1/admin/sse", "/v1/user/sse"]) {
      const none = await h.request("GET", path);
      expect(none.status, none.text).toBe(401);
      expect(none.body.code).toBe("unauthorized");
      const bad = await h.request("GET", path, { token: "not.a.jwt" });
      expect(bad.status, bad.text).toBe(401);
    }
  });

  it("answers 403 to a user on the admin stream", async () => {
    const u = await h.createUser();
    const res = await h.request("GET", "/v1/admin/sse", { token: u.token });
    expect(res.status, res.text).toBe(403);
    expect(res.body.code).toBe("forbidden");
  });

  it("ignores a token in the query string (header only)", async () => {
    const res = await h.request("GET", `/v1/admin/sse?token=${admin}`);
    expect(res.status).toBe(401);
  });
});

describe("admin stream", () => {
  it("delivers a task's status and progress changes and its host's status, then heartbeats", async () => {
    const s = await openStream("/v1/admin/sse", admin);
    try {
      await s.ready();
      const u = await userWithHost();
      const created = await s.waitFor("the new task", (e) => e.event === "task" && e.data.id === u.taskId);
      expect(created.data).toMatchObject({ kind: "host.create", status: "pending", host_id: u.hostId, requested_by: adminId });
      await s.waitFor("the new host", (e) => e.event === "host" && e.data.id === u.hostId && e.data.status === "pending");

      await runTask(u.taskId, u.hostId, "succeeded", s);
      const running = await s.waitFor("running", (e) => e.event === "task" && e.data.id === u.taskId && e.data.status === "running");
      expect(running.data.steps[0]).toMatchObject({ name: "check_images", status: "running" });
      await s.waitFor("60 %", (e) => e.event === "task" && e.data.id === u.taskId && e.data.progress_percent === 60);
      await s.waitFor("succeeded", (e) => e.event === "task" && e.data.id === u.taskId && e.data.status === "succeeded");
      await s.waitFor("host running", (e) => e.event === "host" && e.data.id === u.hostId && e.data.status === "running");
      // Every task event is the docs/api.md#task-object object of GET /v1/admin/tasks/{id}.
      const api = await h.request("GET", `/v1/admin/tasks/${u.taskId}`, { token: admin });
      const last = s.events.filter((e) => e.event === "task" && e.data.id === u.taskId).at(-1)!;
      expect(last.data).toEqual(api.body.task);

      // A task that starts and finishes between two polls is still reported once, finished.
      const quick = await insertTaskRow(h.database.sql, { kind: "host.sync-keys", status: "succeeded", hostId: u.hostId, finishedAt: new Date() });
      await s.waitFor("the quick task", (e) => e.event === "task" && e.data.id === quick && e.data.status === "succeeded");

      // SSE_HEARTBEAT_SECONDS=1 here: a heartbeat comes within a second of opening, and keeps coming.
      await until("heartbeat", () => s.raw().includes(": ping\n\n"));
    } finally {
      await s.close();
    }
  });

  it("reports a host that disappears", async () => {
    const u = await userWithHost();
    const s = await openStream("/v1/admin/sse", admin);
    try {
      await s.ready();
      await h.database.sql`delete from hosts where id = ${u.hostId}`;
      await s.waitFor("host_removed", (e) => e.event === "host_removed" && e.data.id === u.hostId);
    } finally {
      await s.close();
    }
  });

  it("stops polling when the last stream closes", async () => {
    const a = await openStream("/v1/admin/sse", admin);
    const b = await openStream("/v1/admin/sse", admin);
    await a.ready();
    await b.ready();
    expect(h.deps.live.size()).toBe(2);
    await a.close();
    await b.close();
    await until("every subscription gone", () => h.deps.live.size() === 0);
  });
});

describe("user stream", () => {
  it("carries the caller's own host and task updates and never another user's ids", async () => {
    const alice = await userWithHost();
    const bob = await userWithHost();
    const s = await openStream("/v1/user/sse", alice.token);
    // Sees every change the hub delivers: holds each of runTask's states until a poll handed it out.
    const witness = await openStream("/v1/admin/sse", admin);
    try {
      const ready = await s.ready();
      expect(ready.data.role).toBe("user");
      await witness.ready();

      // Bob's host works first and fully; Alice's last.
      await runTask(bob.taskId, bob.hostId, "succeeded", witness);
      const bobRebuild = await h.request("POST", `/v1/user/hosts/${bob.hostId}/rebuild`, { token: bob.token });
      expect(bobRebuild.status, bobRebuild.text).toBe(202);
      await runTask(bobRebuild.body.task_id, bob.hostId, "failed", witness);
      const aliceRebuild = await h.request("POST", `/v1/admin/hosts/${alice.hostId}/rebuild`, { token: admin, body: { mode: "preserve-home" } });
      expect(aliceRebuild.status, aliceRebuild.text).toBe(202);
      await runTask(alice.taskId, alice.hostId, "succeeded", witness);
      await runTask(aliceRebuild.body.task_id, alice.hostId, "succeeded", witness);

      await s.waitFor("own rebuild succeeded", (e) => e.event === "task" && e.data.id === aliceRebuild.body.task_id && e.data.status === "succeeded");
      await s.waitFor("own host running", (e) => e.event === "host" && e.data.id === alice.hostId && e.data.status === "running");
      const own = s.events.find((e) => e.event === "task" && e.data.id === alice.taskId && e.data.status === "running");
      expect(own?.data).toMatchObject({ kind: "host.create", host_id: alice.hostId, progress_percent: 10 });
      // Everything of Bob's was written before the barrier, so anything of his the hub (wrongly) let through is in the stream now.
      await barrier(s, alice.hostId);

      const raw = s.raw();
      for (const foreign of [bob.id, bob.hostId, bob.taskId, bobRebuild.body.task_id, adminId]) {
        expect(raw, `foreign id ${foreign} in the user's stream`).not.toContain(foreign);
      }
      for (const e of s.events) {
        if (e.event === "host") {
          expect(e.data.id).toBe(alice.hostId);
          expect(Object.keys(e.data).sort()).toEqual(["id", "short_id", "status", "updated_at"]);
        }
        if (e.event === "task") {
          expect(e.data.host_id).toBe(alice.hostId);
          expect(e.data).not.toHaveProperty("requested_by");
          expect(e.data).not.toHaveProperty("egress_ip_id");
        }
      }
    } finally {
      await s.close();
      await witness.close();
    }
  });

  it("receives nothing of another user's while it has no host, and the admin's own portal stream works", async () => {
    const carol = await h.createUser();
    const other = await userWithHost();
    const s = await openStream("/v1/user/sse", carol.token);
    const a = await openStream("/v1/user/sse", admin);
    const witness = await openStream("/v1/admin/sse", admin);
    try {
      await s.ready();
      await a.ready();
      await witness.ready();
      await runTask(other.taskId, other.hostId, "succeeded", witness);
      // Only now do carol and the admin get a host of their own, for the barrier: the other
      // user's changes were all written before it, so any of them let through has arrived by its end.
      const carolHost = await insertHostRow(h.database.sql, { userId: carol.id });
      const adminHost = await insertHostRow(h.database.sql, { userId: adminId });
      await Promise.all([barrier(s, carolHost.id), barrier(a, adminHost.id)]);
      for (const [stream, ownHost] of [
        [s, carolHost.id],
        [a, adminHost.id],
      ] as const) {
        const rest = stream.events.filter((e) => e.event !== "ready");
        expect(rest.length).toBeGreaterThan(0);
        for (const e of rest) expect({ event: e.event, id: e.data.id }).toEqual({ event: "host", id: ownHost });
        for (const foreign of [other.id, other.hostId, other.taskId]) expect(stream.raw()).not.toContain(foreign);
      }
    } finally {
      await s.close();
      await a.close();
      await witness.close();
    }
  });

  it("closes the stream once the user is disabled (token re-check)", async () => {
    const dave = await userWithHost();
    const s = await openStream("/v1/user/sse", dave.token);
    await s.ready();
    const res = await h.request("PATCH", `/v1/admin/users/${dave.id}`, { token: admin, body: { status: "disabled" } });
    expect(res.status, res.text).toBe(200);
    // SSE_AUTH_RECHECK_SECONDS=1 here (30 by default).
    expect(await s.closedByServer(5000)).toBe(true);
    const last = s.events.at(-1);
    expect({ event: last?.event, data: last?.data }).toEqual({ event: "revoked", data: { reason: "unauthorized" } });
    expect(s.ended()).toBe(true);
  });

  it("closes the stream after a password change revokes the token", async () => {
    const erin = await h.createUser();
    const s = await openStream("/v1/user/sse", erin.token);
    await s.ready();
    const res = await h.request("POST", "/v1/user/change-password", {
      token: erin.token,
      body: { old_password: erin.password, new_password: "another-password-1" },
    });
    expect(res.status, res.text).toBe(200);
    expect(await s.closedByServer(5000)).toBe(true);
  });
});
