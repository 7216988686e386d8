import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, type TestUser, createApiHarness } from "../../shared/test/api-harness.js";
import {
  docker,
  removeInstanceObjects,
  startTestWorker,
  waitForTask,
  type WorkerHarness,
} from "../../shared/test/worker-harness.js";
import { runExpiryScan } from "../../worker/schedulers/expiry.js";

/**
 * What user changes do to hosts on the real engine (docs/api.md#users, docs/api.md#ssh-keys, docs/architecture.md#host-flows sync_keys, docs/architecture.md#schedulers
 * expiry; checklist items 44–47 and 55). Three hosts, one at a time mostly: D (disable), E
 * (expiry), K (SSH keys, then user deletion).
 */
let h: ApiHarness;
let w: WorkerHarness;
let admin: string;
let adminId: string;
let keyDir: string;

const BEGIN = "# >>> cloud-cli-proxy managed keys >>>";
const END = "# <<< cloud-cli-proxy managed keys <<<";

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h);
  admin = await h.adminToken();
  const [row] = await h.database.sql<{ id: string }[]>`select id from users where role = 'admin'`;
  adminId = row!.id;
  keyDir = mkdtempSync(join(tmpdir(), "ccp-coupling-"));
});
afterAll(async () => {
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
});

const sql = () => h.database.sql;

/** A fresh ed25519 public key line from the real ssh-keygen. */
function newPublicKey(name: string, comment: string): string {
  const path = join(keyDir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path], { stdio: ["ignore", "pipe", "pipe"] });
  return readFileSync(`${path}.pub`, "utf8").trim();
}
const blobOf = (line: string) => line.split(/\s+/).slice(0, 2).join(" ");

async function hostRow(id: string) {
  const [row] = await sql()<{ status: string; desired_state: string }[]>`select status, desired_state from hosts where id = ${id}`;
  return row;
}

async function hostTasks(hostId: string) {
  return sql()<{ id: string; kind: string; status: string; requested_by: string }[]>`
    select id, kind, status, requested_by from tasks where host_id = ${hostId} order by created_at, id`;
}

function running(name: string): boolean | null {
  try {
    return docker(["inspect", "-f", "{{.State.Running}}", name]) === "true";
  } catch {
    return null;
  }
}

function objectsOf(hostId: string) {
  const label = `cloud-cli-proxy.host_id=${hostId}`;
  return {
    containers: docker(["ps", "-aq", "--filter", `label=${label}`]).split("\n").filter(Boolean),
    volumes: docker(["volume", "ls", "-q", "--filter", `label=${label}`]).split("\n").filter(Boolean),
  };
}

/** Create a host for the user and wait until it runs. */
async function runningHost(u: TestUser): Promise<string> {
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  const t = await waitForTask(h, res.body.task_id);
  expect(t.status, JSON.stringify(t)).toBe("succeeded");
  expect((await hostRow(res.body.host.id))!.status).toBe("running");
  return res.body.host.id;
}

/** The one task of this kind the given change created (it exists as soon as the API answered). */
async function onlyTask(hostId: string, kind: string, requestedBy: string, after: string[]) {
  const created = (await hostTasks(hostId)).filter((t) => !after.includes(t.id));
  expect(created.map((t) => `${t.kind} ${t.requested_by}`)).toEqual([`${kind} ${requestedBy}`]);
  return created[0]!.id;
}

const patchStatus = (id: string, status: string) => h.request("PATCH", `/v1/admin/users/${id}`, { token: admin, body: { status } });

describe("disable and re-enable", () => {
  let u: TestUser;
  let hostId: string;

  it("disabling a user with a running host stops it through a host.stop task (system:user-disabled)", async () => {
    u = await h.createUser();
    hostId = await runningHost(u);
    const before = (await hostTasks(hostId)).map((t) => t.id);
    const res = await patchStatus(u.id, "disabled");
    expect(res.status, res.text).toBe(200);
    const stopId = await onlyTask(hostId, "host.stop", "system:user-disabled", before);
    expect((await hostRow(hostId))!.desired_state).toBe("stopped");
    const t = await waitForTask(h, stopId);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(await hostRow(hostId)).toEqual({ status: "stopped", desired_state: "stopped" });
    expect(running(`ccp-host-${hostId}`)).toBe(false);
    expect(running(`ccp-gw-${hostId}`)).toBe(false);
    const evs = await sql()<{ type: string; actor_id: string | null; user_id: string | null; metadata: Record<string, unknown> }[]>`
      select type, actor_id, user_id, metadata from events
      where (type = 'user.disabled' and user_id = ${u.id}) or (type = 'host.stopped' and host_id = ${hostId})`;
    expect(evs.find((e) => e.type === "user.disabled")).toMatchObject({ actor_id: adminId, user_id: u.id });
    expect(evs.find((e) => e.type === "host.stopped")).toMatchObject({ actor_id: null, user_id: u.id, metadata: { reason: "user_disabled" } });
    // The old token is dead.
    expect((await h.request("GET", "/v1/user/hosts", { token: u.token })).status).toBe(401);
  });

  it("re-enabling the user does not start the host", async () => {
    const before = await hostTasks(hostId);
    const res = await patchStatus(u.id, "active");
    expect(res.status, res.text).toBe(200);
    expect(res.body.user.status).toBe("active");
    // Starting needs a task, and a task would be created in the same transaction: none was.
    expect(await hostTasks(hostId)).toEqual(before);
    expect(await hostRow(hostId)).toEqual({ status: "stopped", desired_state: "stopped" });
    expect(running(`ccp-host-${hostId}`)).toBe(false);
  });

  it("disabling a user whose host is already stopped creates no task", async () => {
    const before = await hostTasks(hostId);
    expect((await patchStatus(u.id, "disabled")).status).toBe(200);
    expect(await hostTasks(hostId)).toEqual(before);
    expect(await hostRow(hostId)).toEqual({ status: "stopped", desired_state: "stopped" });
  });
});

describe("expiry", () => {
  let u: TestUser;
  let hostId: string;
  let tokenVersion: number;

  const version = async () => (await sql()<{ v: number }[]>`select token_version as v from users where id = ${u.id}`)[0]!.v;
  const expiredEvents = async () =>
    sql()<{ actor_id: string | null; metadata: Record<string, unknown> }[]>`
      select actor_id, metadata from events where type = 'user.expired' and user_id = ${u.id}`;

  it("an expires_at in the past: the token fails at once; the scan revokes, records user.expired and stops the host (system:expiry)", async () => {
    u = await h.createUser({ expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    hostId = await runningHost(u);
    tokenVersion = await version();
    await sql()`update users set expires_at = now() - interval '1 second' where id = ${u.id}`;
    expect((await h.request("GET", "/v1/user/hosts", { token: u.token })).status).toBe(401);
    const before = (await hostTasks(hostId)).map((t) => t.id);

    expect(await runExpiryScan(w.deps)).toEqual({ expired: 1 });
    expect(await version()).toBe(tokenVersion + 1);
    const evs = await expiredEvents();
    expect(evs).toHaveLength(1);
    expect(evs[0]!.actor_id).toBeNull();
    const stopId = await onlyTask(hostId, "host.stop", "system:expiry", before);
    const t = await waitForTask(h, stopId);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(await hostRow(hostId)).toEqual({ status: "stopped", desired_state: "stopped" });
    expect(running(`ccp-host-${hostId}`)).toBe(false);
    const [stopped] = await sql()<{ metadata: Record<string, unknown> }[]>`
      select metadata from events where type = 'host.stopped' and task_id = ${stopId}`;
    expect(stopped!.metadata).toEqual({ reason: "user_expired" });
  });

  it("a second scan does nothing new (once per expiry value)", async () => {
    const before = await hostTasks(hostId);
    expect(await runExpiryScan(w.deps)).toEqual({ expired: 0 });
    expect(await version()).toBe(tokenVersion + 1);
    expect(await expiredEvents()).toHaveLength(1);
    expect(await hostTasks(hostId)).toEqual(before);
  });

  it("extending the expiry restores login but does not start the host", async () => {
    const before = await hostTasks(hostId);
    const res = await h.request("PUT", `/v1/admin/users/${u.id}/expiry`, {
      token: admin,
      body: { expires_at: new Date(Date.now() + 86_400_000).toISOString() },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body.user.expired).toBe(false);
    expect((await h.login(u.username, u.password)).status).toBe(200);
    expect((await h.request("GET", "/v1/user/hosts", { token: u.token })).status).toBe(401); // issued before the expiry
    expect(await hostTasks(hostId)).toEqual(before);
    expect(await hostRow(hostId)).toEqual({ status: "stopped", desired_state: "stopped" });
    expect(await runExpiryScan(w.deps)).toEqual({ expired: 0 });
    expect(await hostTasks(hostId)).toEqual(before);
  });

  it("a new expiry value that passes is enforced again (the host is already stopped: no task)", async () => {
    await sql()`update users set expires_at = now() - interval '1 second' where id = ${u.id}`;
    const before = await hostTasks(hostId);
    const v = await version();
    expect(await runExpiryScan(w.deps)).toEqual({ expired: 1 });
    expect(await expiredEvents()).toHaveLength(2);
    expect(await version()).toBe(v + 1);
    expect(await hostTasks(hostId)).toEqual(before);
  });
});

describe("SSH keys on a host, then deleting the user", () => {
  let u: TestUser;
  let hostId: string;
  let outsideLine: string;

  const container = () => `ccp-host-${hostId}`;
  const authorizedKeys = () => docker(["exec", container(), "cat", "/home/workspace/.ssh/authorized_keys"]);
  const expectedFile = (keys: { id: string; line: string }[]) =>
    [outsideLine, ...(keys.length ? [BEGIN, ...keys.map((k) => `${blobOf(k.line)} ccp:${k.id}`), END] : [])].join("\n");

  let key1: { id: string; line: string };
  let key2: { id: string; line: string };

  it("a line written outside the managed block beforehand", async () => {
    u = await h.createUser();
    hostId = await runningHost(u);
    outsideLine = `${blobOf(newPublicKey("outside", "x"))} my-own-key`;
    docker([
      "exec", "-u", "workspace", container(), "sh", "-c",
      'mkdir -p -m 700 "$HOME/.ssh" && printf "%s\\n" "$1" >> "$HOME/.ssh/authorized_keys" && chmod 600 "$HOME/.ssh/authorized_keys"',
      "sh", outsideLine,
    ]);
    expect(authorizedKeys()).toBe(outsideLine);
  });

  it("adding a key while the host runs → 201 with task_id; the sync task writes the managed block (mode 600, uid 1000)", async () => {
    const line = newPublicKey("k1", "alice@laptop");
    const res = await h.request("POST", `/v1/admin/users/${u.id}/ssh-keys`, { token: admin, body: { public_key: line } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.task_id).toMatch(/^[0-9a-f-]{36}$/);
    key1 = { id: res.body.key.id, line };
    const t = await waitForTask(h, res.body.task_id);
    expect(t).toMatchObject({ status: "succeeded", kind: "host.sync-keys", host_id: hostId, requested_by: adminId });
    expect(t.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual(["sync_keys:succeeded"]);
    const file = authorizedKeys();
    expect(file).toBe(expectedFile([key1]));
    expect(file).not.toContain("alice@laptop"); // the comment is not copied
    expect(docker(["exec", container(), "stat", "-c", "%a %u %g", "/home/workspace/.ssh/authorized_keys"])).toBe("600 1000 1000");
    expect(docker(["exec", container(), "stat", "-c", "%a %u %g", "/home/workspace/.ssh"])).toBe("700 1000 1000");
    const [ev] = await sql()<{ user_id: string; metadata: Record<string, unknown> }[]>`
      select user_id, metadata from events where type = 'host.keys.synced' and task_id = ${res.body.task_id}`;
    expect(ev).toMatchObject({ user_id: u.id, metadata: { keys: 1 } });
  });

  it("a self-service key is added below the first, in creation order", async () => {
    const line = newPublicKey("k2", "second");
    const res = await h.request("POST", "/v1/user/ssh-keys", { token: u.token, body: { public_key: line } });
    expect(res.status, res.text).toBe(201);
    key2 = { id: res.body.key.id, line };
    const t = await waitForTask(h, res.body.task_id);
    expect(t).toMatchObject({ status: "succeeded", requested_by: u.id });
    expect(authorizedKeys()).toBe(expectedFile([key1, key2]));
  });

  it("deleting keys rewrites the block, and removes it with the last key; the outside line stays", async () => {
    const before1 = (await hostTasks(hostId)).map((t) => t.id);
    const d1 = await h.request("DELETE", `/v1/admin/users/${u.id}/ssh-keys/${key1.id}`, { token: admin });
    expect(d1.status, d1.text).toBe(204);
    const s1 = await onlyTask(hostId, "host.sync-keys", adminId, before1);
    expect((await waitForTask(h, s1)).status).toBe("succeeded");
    expect(authorizedKeys()).toBe(expectedFile([key2]));

    const before2 = (await hostTasks(hostId)).map((t) => t.id);
    const d2 = await h.request("DELETE", `/v1/user/ssh-keys/${key2.id}`, { token: u.token });
    expect(d2.status, d2.text).toBe(204);
    const s2 = await onlyTask(hostId, "host.sync-keys", u.id, before2);
    expect((await waitForTask(h, s2)).status).toBe("succeeded");
    expect(authorizedKeys()).toBe(outsideLine);
    expect(docker(["exec", container(), "stat", "-c", "%a %u %g", "/home/workspace/.ssh/authorized_keys"])).toBe("600 1000 1000");
  });

  it("adding a key while the host is stopped → 201 without task_id; the next start installs it", async () => {
    const stop = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
    const before = await hostTasks(hostId);
    const line = newPublicKey("k3", "third");
    const res = await h.request("POST", `/v1/admin/users/${u.id}/ssh-keys`, { token: admin, body: { public_key: line } });
    expect(res.status, res.text).toBe(201);
    expect(res.body).not.toHaveProperty("task_id");
    expect(await hostTasks(hostId)).toEqual(before);
    const gen = await h.request("POST", "/v1/user/ssh-keys/generate", { token: u.token, body: {} });
    expect(gen.status, gen.text).toBe(201);
    expect(gen.body).not.toHaveProperty("task_id");
    expect(await hostTasks(hostId)).toEqual(before);

    const start = await h.request("POST", `/v1/admin/hosts/${hostId}/start`, { token: admin });
    expect((await waitForTask(h, start.body.task_id)).status).toBe("succeeded");
    expect(authorizedKeys()).toBe(
      expectedFile([
        { id: res.body.key.id, line },
        { id: gen.body.key.id, line: gen.body.key.public_key },
      ]),
    );
  });

  it("deleting the user → 204; its host.delete (system:user-deleted) removes every object; the user row and keys are gone", async () => {
    expect(await sql()`select id from ssh_keys where user_id = ${u.id}`).toHaveLength(2);
    const before = (await hostTasks(hostId)).map((t) => t.id);
    const res = await h.request("DELETE", `/v1/admin/users/${u.id}`, { token: admin });
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");
    expect((await h.request("GET", `/v1/admin/users/${u.id}`, { token: admin })).status).toBe(404);
    expect((await hostRow(hostId))!.status).toBe("deleting");
    const delId = await onlyTask(hostId, "host.delete", "system:user-deleted", before);
    const t = await waitForTask(h, delId);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(t.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
      "stop_host:succeeded", "remove_host:succeeded", "remove_gateway:succeeded", "remove_volume:succeeded", "remove_rows:succeeded",
    ]);
    expect(objectsOf(hostId)).toEqual({ containers: [], volumes: [] });
    expect(await sql()`select id from hosts where id = ${hostId}`).toHaveLength(0);
    expect(await sql()`select id from users where id = ${u.id}`).toHaveLength(0);
    expect(await sql()`select id from ssh_keys where user_id = ${u.id}`).toHaveLength(0);
    const evs = await sql()<{ type: string; actor_id: string | null; user_id: string | null; metadata: Record<string, unknown> }[]>`
      select type, actor_id, user_id, metadata from events where user_id = ${u.id} and type in ('user.deleted', 'host.deleted')`;
    expect(evs.find((e) => e.type === "user.deleted")).toMatchObject({ actor_id: adminId, metadata: { host_ids: [hostId] } });
    expect(evs.find((e) => e.type === "host.deleted")).toMatchObject({ actor_id: null, metadata: { keep_home: false } });
    expect((await h.login(u.username, u.password)).status).toBe(401);
  });
});
