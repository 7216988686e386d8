import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness, type TestUser } from "../../shared/test/api-harness.js";

/**
 * Task floods (issue 10 §2): a tenant who repeats requests gets the task already waiting back, a
 * host's queue of requested tasks is capped (429 too_many_tasks, nothing half-applied), and a user
 * token's mutating requests are budgeted per user (429 rate_limited) without touching other users,
 * admins or reads. No worker runs here: tasks stay pending, which is exactly the flood's state.
 */
let h: ApiHarness;
let admin: string;

beforeAll(async () => {
  h = await createApiHarness({ USER_MUTATIONS_PER_MINUTE: "1000", HOST_MAX_PENDING_TASKS: "4" });
  admin = await h.adminToken();
});
afterAll(async () => {
  await h?.close();
});

const sql = () => h.database.sql;

/** A user with a host created through the API (its create task stays pending: no worker). */
async function userWithHost(harness = h): Promise<{ user: TestUser; hostId: string }> {
  const user = await harness.createUser();
  const res = await harness.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: user.id } });
  expect(res.status, res.text).toBe(202);
  return { user, hostId: res.body.host.id as string };
}

async function pendingTasks(hostId: string) {
  return sql()<{ id: string; kind: string; payload: Record<string, unknown> }[]>`
    select id, kind, payload from tasks where host_id = ${hostId} and status = 'pending' order by created_at, id`;
}

describe("an identical request already waiting is returned, not queued again", () => {
  it("repeated rebuilds answer 202 with the same task id, one row, one event", async () => {
    const { user, hostId } = await userWithHost();
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const res = await h.request("POST", `/v1/user/hosts/${hostId}/rebuild`, { token: user.token });
      expect(res.status, res.text).toBe(202);
      ids.add(res.body.task_id as string);
    }
    expect(ids.size).toBe(1);
    const rebuilds = (await pendingTasks(hostId)).filter((t) => t.kind === "host.rebuild");
    expect(rebuilds.map((t) => t.id)).toEqual([...ids]);
    const [ev] = await sql()<{ n: number }[]>`select count(*)::int as n from events where type = 'host.rebuild.requested' and host_id = ${hostId}`;
    expect(ev!.n).toBe(1);
  });

  it("a different payload, or the same kind behind another task, is a new task (order is kept)", async () => {
    const { user, hostId } = await userWithHost();
    const keep = await h.request("POST", `/v1/user/hosts/${hostId}/rebuild`, { token: user.token, body: { mode: "preserve-home" } });
    const wipe = await h.request("POST", `/v1/user/hosts/${hostId}/rebuild`, { token: user.token, body: { mode: "wipe-home" } });
    expect([keep.status, wipe.status]).toEqual([202, 202]);
    expect(wipe.body.task_id).not.toBe(keep.body.task_id);

    const other = await userWithHost();
    // create, stop, start, stop: the second stop is not the first one (a start lies between them).
    const stop1 = await h.request("POST", `/v1/admin/hosts/${other.hostId}/stop`, { token: admin });
    const start = await h.request("POST", `/v1/admin/hosts/${other.hostId}/start`, { token: admin });
    const stop2 = await h.request("POST", `/v1/admin/hosts/${other.hostId}/stop`, { token: admin });
    expect([stop1.status, start.status, stop2.status]).toEqual([202, 202, 202]);
    expect(new Set([stop1.body.task_id, start.body.task_id, stop2.body.task_id]).size).toBe(3);
    // The queue is full (4), but repeating its tail still answers with the tail, not 429.
    const again = await h.request("POST", `/v1/admin/hosts/${other.hostId}/stop`, { token: admin });
    expect(again.status, again.text).toBe(202);
    expect(again.body.task_id).toBe(stop2.body.task_id);
    expect((await pendingTasks(other.hostId)).map((t) => t.kind)).toEqual(["host.create", "host.stop", "host.start", "host.stop"]);
  });

  it("key changes while a sync is waiting reuse that sync (it reads the keys when it runs)", async () => {
    const { user, hostId } = await userWithHost();
    await sql()`update hosts set status = 'running' where id = ${hostId}`;
    const taskIds = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const res = await h.request("POST", "/v1/user/ssh-keys/generate", { token: user.token, body: { label: `k${i}` } });
      expect(res.status, res.text).toBe(201);
      taskIds.add(res.body.task_id as string);
    }
    expect(taskIds.size).toBe(1);
    expect((await pendingTasks(hostId)).filter((t) => t.kind === "host.sync-keys")).toHaveLength(1);
  });
});

describe("a host's queue of requested tasks is capped", () => {
  it("answers 429 too_many_tasks past HOST_MAX_PENDING_TASKS and changes nothing", async () => {
    const { user, hostId } = await userWithHost();
    // create (1) + rebuild preserve (2) + rebuild wipe (3) + rebuild preserve (4): alternating
    // payloads, so no request repeats the tail.
    const modes = ["preserve-home", "wipe-home", "preserve-home"];
    for (const mode of modes) {
      const res = await h.request("POST", `/v1/user/hosts/${hostId}/rebuild`, { token: user.token, body: { mode } });
      expect(res.status, res.text).toBe(202);
    }
    const before = await pendingTasks(hostId);
    expect(before).toHaveLength(4);
    await sql()`update hosts set desired_state = 'running' where id = ${hostId}`;
    const over = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect(over.status, over.text).toBe(429);
    expect(over.body).toMatchObject({ code: "too_many_tasks" });
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThan(0);
    // Nothing half-applied: no task, desired state untouched, no event.
    expect(await pendingTasks(hostId)).toEqual(before);
    const [host] = await sql()<{ desired_state: string }[]>`select desired_state from hosts where id = ${hostId}`;
    expect(host!.desired_state).toBe("running");
    const [ev] = await sql()<{ n: number }[]>`select count(*)::int as n from events where type = 'host.stop.requested' and host_id = ${hostId}`;
    expect(ev!.n).toBe(0);
    // Deletion is never capped: it supersedes the queue.
    const del = await h.request("DELETE", `/v1/admin/hosts/${hostId}`, { token: admin });
    expect(del.status, del.text).toBe(202);
  });
});

describe("mutating requests are budgeted per user", () => {
  it("the (N+1)th mutating request of a user in a minute is 429; other users, admins and reads are untouched", async () => {
    const limited = await h.withConfig({ USER_MUTATIONS_PER_MINUTE: "3" });
    const a = await userWithHost(limited);
    const b = await userWithHost(limited);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      statuses.push((await limited.request("POST", `/v1/user/hosts/${a.hostId}/rebuild`, { token: a.user.token })).status);
    }
    expect(statuses).toEqual([202, 202, 202, 429, 429]);
    const refused = await limited.request("POST", "/v1/user/ssh-keys/generate", { token: a.user.token, body: { label: "x" } });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ code: "rate_limited" });
    const retry = Number(refused.headers.get("retry-after"));
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(60);
    // Refused before anything was done: no key was created.
    const [keys] = await sql()<{ n: number }[]>`select count(*)::int as n from ssh_keys where user_id = ${a.user.id}`;
    expect(keys!.n).toBe(0);
    expect((await limited.request("GET", `/v1/user/hosts/${a.hostId}`, { token: a.user.token })).status).toBe(200);
    expect((await limited.request("POST", `/v1/user/hosts/${b.hostId}/rebuild`, { token: b.user.token })).status).toBe(202);
    for (let i = 0; i < 5; i++) {
      expect((await limited.request("POST", `/v1/admin/hosts/${a.hostId}/start`, { token: admin })).status).not.toBe(429);
    }
  });

  it("taking the account back is never budgeted, and a revoked token's flood does not spend the new token's budget", async () => {
    const limited = await h.withConfig({ USER_MUTATIONS_PER_MINUTE: "2" });
    const a = await userWithHost(limited);
    const stolen = a.user.token;
    for (let i = 0; i < 3; i++) await limited.request("POST", `/v1/user/hosts/${a.hostId}/rebuild`, { token: stolen });
    expect((await limited.request("POST", `/v1/user/hosts/${a.hostId}/rebuild`, { token: stolen })).status).toBe(429);
    // The owner changes the password and logs out everywhere while the budget is spent.
    const changed = await limited.request("POST", "/v1/user/change-password", {
      token: stolen,
      body: { old_password: a.user.password, new_password: `${a.user.password}-new` },
    });
    expect(changed.status, changed.text).toBe(200);
    const fresh = (changed.body.token as string | undefined) ?? (await limited.login(a.user.username, `${a.user.password}-new`, "127.0.0.9")).body.token;
    expect((await limited.request("POST", "/v1/auth/logout-all", { token: fresh })).status).toBe(204);
    const newest = (await limited.login(a.user.username, `${a.user.password}-new`, "127.0.0.9")).body.token as string;
    // The old token is dead (its spent budget still answers 429 first: no Postgres for a flood),
    // and it spent nothing of the new token's budget.
    expect((await limited.request("POST", `/v1/user/hosts/${a.hostId}/rebuild`, { token: stolen })).status).toBe(429);
    expect((await limited.request("GET", `/v1/user/hosts/${a.hostId}`, { token: stolen })).status).toBe(401);
    expect((await limited.request("POST", `/v1/user/hosts/${a.hostId}/rebuild`, { token: newest, body: { mode: "wipe-home" } })).status).toBe(202);
  });
});
