import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWorkerConfig } from "../../shared/config/worker.js";
import { createLogger } from "../../shared/logger.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { memoryWorkerEnv, waitForTask } from "../../shared/test/worker-harness.js";
import type { SshProbe } from "../../worker/hosts/ssh-ready.js";
import { gatewayName, homeVolumeName, hostContainerName } from "../../worker/hosts/names.js";
import { startWorker } from "../../worker/main.js";
import { MemoryRuntime } from "../../worker/runtime/memory/memory-runtime.js";

/**
 * host.move and the drain that uses it (docs/api.md#hosts-move), through the API and the real
 * worker on in-memory engines. A worker serves only its own engine, and a move runs on the source
 * engine's worker: here the `default` engine's, whose deps reach the target engine's MemoryRuntime
 * through `runtimeFor` (what a Docker runtime built from the target's row is in production).
 */
let h: ApiHarness;
let admin: string;
let stopWorker: () => Promise<void>;
let stopTargetWorker: () => Promise<void>;
const source = new MemoryRuntime();
const others = new Map<string, MemoryRuntime>();
const engineRuntime = (id: string) => {
  let rt = others.get(id);
  if (!rt) {
    rt = new MemoryRuntime({ images: [...source.images.keys()] });
    others.set(id, rt);
  }
  return rt;
};
// sshd answers wherever the pinned key is found on a running host (the engines' addresses may
// coincide: each in-memory engine numbers its networks alike, and the pin tells them apart).
const sshProbe: SshProbe = async (o) => (await source.sshProbe(o)) || (await Promise.all([...others.values()].map((rt) => rt.sshProbe(o)))).some(Boolean);

const TARGET = "mv-target";
const CORDONED = "mv-cordoned";
const HOME_FILE = "notes/hello.txt";
const ON_DEFAULT = { selector: { origin: "yes" } };

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  const config = parseWorkerConfig(memoryWorkerEnv(h, { WORKER_CONCURRENCY: "2" }));
  source.addImage(config.HOST_IMAGE);
  source.addImage(config.GATEWAY_IMAGE);
  const logger = createLogger({ level: "warn" }, new Writable({ write: (_c, _e, cb) => cb() }));
  const w = await startWorker(config, logger, { database: h.database, runtime: source, sshProbe, runtimeFor: (row) => engineRuntime(row.id) });
  stopWorker = w.stop;
  for (const id of [TARGET, CORDONED]) {
    const res = await h.request("POST", "/v1/admin/engines", { token: admin, body: { id, endpoint: `unix:///run/${id}.sock` } });
    expect(res.status, res.text).toBe(201);
  }
  // The target's own worker: it runs the host's tasks once the host is there.
  const tw = await startWorker(parseWorkerConfig(memoryWorkerEnv(h, { ENGINE_ID: TARGET })), logger, {
    database: h.database,
    runtime: engineRuntime(TARGET),
    sshProbe,
  });
  stopTargetWorker = tw.stop;
  const c = await h.request("POST", `/v1/admin/engines/${CORDONED}/cordon`, { token: admin });
  expect(c.status, c.text).toBe(200);
  // Creates land on `default` (by a selector only it matches): hosts start where its worker runs.
  const l = await h.request("PATCH", "/v1/admin/engines/default", { token: admin, body: { labels: { origin: "yes" } } });
  expect(l.status, l.text).toBe(200);
});
afterAll(async () => {
  await stopWorker?.();
  await stopTargetWorker?.();
  await h?.close();
});

interface HostFacts {
  engine_id: string;
  status: string;
  short_id: string;
  host_key_public: string | null;
  internal_key_public: string | null;
  ssh_password_enc: string | null;
  management_address: string | null;
}
const hostRow = async (hostId: string): Promise<HostFacts> => {
  const [row] = await h.database.sql<HostFacts[]>`
    select engine_id, status, short_id, host_key_public, internal_key_public, ssh_password_enc, management_address
      from hosts where id = ${hostId}`;
  return row!;
};
const bindingOf = async (hostId: string) =>
  JSON.stringify(await h.database.sql`select * from host_egress_bindings where host_id = ${hostId}`);
const stepsOf = (t: { steps: { name: string; status: string }[] }) => Object.fromEntries(t.steps.map((s) => [s.name, s.status]));

async function createRunningHost(): Promise<string> {
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id, placement: ON_DEFAULT } });
  expect(res.status, res.text).toBe(202);
  const t = await waitForTask(h, res.body.task_id, 30_000);
  expect(t.status, JSON.stringify(t)).toBe("succeeded");
  return res.body.host.id as string;
}

const move = (hostId: string, body?: unknown) => h.request("POST", `/v1/admin/hosts/${hostId}/move`, { token: admin, body });

describe("host.move on in-memory engines", () => {
  let hostId: string;

  it("refuses a move to the host's own engine, to a cordoned engine, to an unknown one", async () => {
    hostId = await createRunningHost();
    expect((await hostRow(hostId)).engine_id).toBe("default");
    const same = await move(hostId, { engine_id: "default" });
    expect(same.status, same.text).toBe(409);
    expect(same.body.code).toBe("same_engine");
    const cordoned = await move(hostId, { engine_id: CORDONED });
    expect(cordoned.status, cordoned.text).toBe(409);
    expect(cordoned.body.code).toBe("no_capacity");
    const unknown = await move(hostId, { engine_id: "mv-nowhere" });
    expect(unknown.status, unknown.text).toBe(404);
    // A host with an unfinished task is not moved (the move would be queued behind it on the old engine).
    const u = await h.createUser();
    const created = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id, placement: ON_DEFAULT } });
    expect(created.status, created.text).toBe(202);
    const busy = await move(created.body.host.id, { engine_id: TARGET });
    expect(busy.status, busy.text).toBe(409);
    expect(busy.body.code).toBe("host_busy");
    expect((await waitForTask(h, created.body.task_id, 30_000)).status).toBe("succeeded");
    // Refused before any task existed.
    const [n] = await h.database.sql<{ n: number }[]>`select count(*)::int as n from tasks where host_id = ${hostId} and kind = 'host.move'`;
    expect(n!.n).toBe(0);
  });

  it("a copy that fails leaves the host on its engine with its home, and nothing on the target", async () => {
    source.volumes.get(homeVolumeName(hostId))!.files.set(HOME_FILE, { content: Buffer.from("kept across engines\n"), mode: 0o100644 });
    engineRuntime(TARGET).failNext("importVolume");
    const res = await move(hostId, { engine_id: TARGET });
    expect(res.status, res.text).toBe(202);
    const t = await waitForTask(h, res.body.task_id, 30_000);
    expect(t.status, JSON.stringify(t)).toBe("failed");
    expect(stepsOf(t)).toMatchObject({ stop_source: "succeeded", copy_home: "failed", switch_engine: "pending" });
    // Failed closed where it is; the reconciler brings it up there again.
    expect(await hostRow(hostId)).toMatchObject({ engine_id: "default", status: "failed" });
    expect(source.volumes.get(homeVolumeName(hostId))?.files.get(HOME_FILE)?.content.toString()).toBe("kept across engines\n");
    expect(engineRuntime(TARGET).volumes.has(homeVolumeName(hostId))).toBe(false);
  });

  it("moves a host with its home, keys and binding and starts it there; the source keeps nothing", async () => {
    const before = await hostRow(hostId);
    const binding = await bindingOf(hostId);
    const res = await move(hostId, { engine_id: TARGET });
    expect(res.status, res.text).toBe(202);
    expect(res.body.target_engine_id).toBe(TARGET);
    const t = await waitForTask(h, res.body.task_id, 30_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(stepsOf(t)).toEqual({
      stop_source: "succeeded",
      copy_home: "succeeded",
      switch_engine: "succeeded",
      start_target: "succeeded",
      remove_source: "succeeded",
    });
    const target = others.get(TARGET)!;
    const after = await hostRow(hostId);
    expect(after).toMatchObject({
      engine_id: TARGET,
      status: "running",
      short_id: before.short_id,
      host_key_public: before.host_key_public,
      internal_key_public: before.internal_key_public,
      ssh_password_enc: before.ssh_password_enc,
    });
    expect(after.management_address).toBe(target.containers.get(gatewayName(hostId))!.networks["ccp-mem-mgmt"]);
    expect(await bindingOf(hostId)).toBe(binding);
    // Running on the target, the home's content with it, the same host key in its sshd.
    expect(target.containers.get(gatewayName(hostId))?.running).toBe(true);
    expect(target.containers.get(hostContainerName(hostId))?.running).toBe(true);
    expect(target.fileOf(hostContainerName(hostId), `/home/workspace/${HOME_FILE}`)?.toString()).toBe("kept across engines\n");
    expect(target.fileOf(hostContainerName(hostId), "/etc/ssh/ccp/ssh_host_ed25519_key.pub")?.toString().trim()).toBe(before.host_key_public!.trim());
    // Nothing of the host is left on the source.
    expect(source.containers.has(gatewayName(hostId))).toBe(false);
    expect(source.containers.has(hostContainerName(hostId))).toBe(false);
    expect(source.volumes.has(homeVolumeName(hostId))).toBe(false);
    const [ev] = await h.database.sql<{ metadata: Record<string, string> }[]>`
      select metadata from events where type = 'host.moved' and host_id = ${hostId}`;
    expect(ev?.metadata).toMatchObject({ from_engine_id: "default", to_engine_id: TARGET });
    expect(t.result).toMatchObject({ source_engine_id: "default", target_engine_id: TARGET });
  });

  it("a task requested while the host moves runs after the move, on the target engine", async () => {
    const id = await createRunningHost();
    const copying = source.hold("exportVolume", homeVolumeName(id));
    const res = await move(id, { engine_id: TARGET });
    expect(res.status, res.text).toBe(202);
    await copying.reached;
    const stop = await h.request("POST", `/v1/admin/hosts/${id}/stop`, { token: admin });
    expect(stop.status, stop.text).toBe(202);
    copying.release();
    const t = await waitForTask(h, res.body.task_id, 30_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    // The stop set desired_state before the move reached start_target: the host comes to rest there.
    expect(stepsOf(t)).toMatchObject({ start_target: "skipped", remove_source: "succeeded" });
    const s = await waitForTask(h, stop.body.task_id, 30_000);
    expect(s.status, JSON.stringify(s)).toBe("succeeded");
    const [row] = await h.database.sql<{ engine_id: string }[]>`select engine_id from tasks where id = ${stop.body.task_id}`;
    expect(row!.engine_id).toBe(TARGET);
    expect(await hostRow(id)).toMatchObject({ engine_id: TARGET, status: "stopped" });
  });

  it("drain asks for one move per host of the engine and every host lands elsewhere", async () => {
    const a = await createRunningHost();
    const b = await createRunningHost();
    // One of them at rest: it moves and stays stopped.
    const stop = await h.request("POST", `/v1/admin/hosts/${b}/stop`, { token: admin });
    expect(stop.status, stop.text).toBe(202);
    expect((await waitForTask(h, stop.body.task_id, 30_000)).status).toBe("succeeded");
    const onDefault = (await h.database.sql<{ id: string }[]>`select id from hosts where engine_id = 'default'`).map((r) => r.id);
    expect(onDefault).toEqual(expect.arrayContaining([a, b]));
    const res = await h.request("POST", "/v1/admin/engines/default/drain", { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(res.body.engine.state).toBe("draining");
    expect(res.body.moves.skipped).toEqual([]);
    const requested = res.body.moves.requested as { host_id: string; task_id: string; target_engine_id: string }[];
    expect(requested.map((m) => m.host_id).sort()).toEqual(onDefault.sort());
    // The cordoned engine takes none.
    expect(new Set(requested.map((m) => m.target_engine_id))).toEqual(new Set([TARGET]));
    for (const m of requested) {
      const t = await waitForTask(h, m.task_id, 30_000);
      expect(t.status, JSON.stringify(t)).toBe("succeeded");
    }
    expect(await hostRow(a)).toMatchObject({ engine_id: TARGET, status: "running" });
    expect(await hostRow(b)).toMatchObject({ engine_id: TARGET, status: "stopped" });
    const [left] = await h.database.sql<{ n: number }[]>`select count(*)::int as n from hosts where engine_id = 'default'`;
    expect(left!.n).toBe(0);
    expect([...source.volumes.keys()].filter((v) => v.startsWith("ccp-home-"))).toEqual([]);
    // Nothing left to move: a second drain asks for nothing.
    const again = await h.request("POST", "/v1/admin/engines/default/drain", { token: admin });
    expect(again.status, again.text).toBe(200);
    expect(again.body.moves).toEqual({ requested: [], skipped: [] });
  });
});
