import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWorkerConfig } from "../../shared/config/worker.js";
import { createLogger } from "../../shared/logger.js";
import { generateEd25519KeyPair } from "../../shared/ssh/keygen.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { memoryWorkerEnv, waitForTask } from "../../shared/test/worker-harness.js";
import type { SshProbe } from "../../worker/hosts/ssh-ready.js";
import { gatewayName, homeVolumeName, hostContainerName } from "../../worker/hosts/names.js";
import { startWorker } from "../../worker/main.js";
import { MemoryRuntime, engineDown, refused } from "../../worker/runtime/memory/memory-runtime.js";

/**
 * The real task runner and host flows (BullMQ, Postgres task rows, Redis locks, the API) on the
 * in-memory Runtime: the flows' semantics without an engine, in seconds. test/docker/ proves the
 * same flows on the real engine; this suite adds what the real engine cannot be made to do on
 * cue (an engine that drops one call, a refused start, a cancel mid-step).
 *
 * Unbound hosts go direct (EGRESS_UNBOUND_POLICY=direct): verify_egress then has nothing to check,
 * and the in-memory engine runs no probe containers. The home disk cap stays on: the disk agent's
 * operations are answered by the runtime.
 */
let h: ApiHarness;
let admin: string;
let stopWorker: () => Promise<void>;
const mem = new MemoryRuntime();
let sshBroken = false;
const sshProbe: SshProbe = async (o) => !sshBroken && (await mem.sshProbe(o));

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  const config = parseWorkerConfig(memoryWorkerEnv(h, { WORKER_CONCURRENCY: "2" }));
  mem.addImage(config.HOST_IMAGE);
  mem.addImage(config.GATEWAY_IMAGE);
  const logger = createLogger({ level: "warn" }, new Writable({ write: (_c, _e, cb) => cb() }));
  const w = await startWorker(config, logger, { database: h.database, runtime: mem, sshProbe });
  stopWorker = w.stop;
});
afterAll(async () => {
  await stopWorker?.();
  await h?.close();
});

const hostRow = async (hostId: string) => {
  const [row] = await h.database.sql<{ status: string; desired_state: string; management_address: string | null }[]>`
    select status, desired_state, management_address from hosts where id = ${hostId}`;
  return row;
};
const taskRow = async (taskId: string) => {
  const [row] = await h.database.sql<{ attempt: number; error_code: string | null }[]>`select attempt, error_code from tasks where id = ${taskId}`;
  return row!;
};
const running = (name: string) => mem.containers.get(name)?.running === true;
const stepsOf = (t: { steps: { name: string; status: string }[] }) => Object.fromEntries(t.steps.map((s) => [s.name, s.status]));

async function act(hostId: string, op: "start" | "stop" | "rebuild", body?: unknown) {
  const res = await h.request("POST", `/v1/admin/hosts/${hostId}/${op}`, { token: admin, body });
  expect(res.status, res.text).toBe(202);
  return res.body.task_id as string;
}

async function createHost(): Promise<{ hostId: string; userId: string; taskId: string; publicKey: string }> {
  const u = await h.createUser();
  const key = generateEd25519KeyPair("memory-runtime-test");
  const k = await h.request("POST", `/v1/admin/users/${u.id}/ssh-keys`, { token: admin, body: { public_key: key.publicKey } });
  expect(k.status, k.text).toBe(201);
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  return { hostId: res.body.host.id, userId: u.id, taskId: res.body.task_id, publicKey: key.publicKey };
}

describe("host flows on the in-memory runtime", () => {
  let hostId: string;
  let publicKey: string;

  it("create: every step runs, the host is running behind its gateway with its keys synced", async () => {
    const c = await createHost();
    hostId = c.hostId;
    publicKey = c.publicKey;
    const t = await waitForTask(h, c.taskId, 30_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(stepsOf(t)).toEqual({
      check_images: "succeeded",
      prepare_keys: "succeeded",
      prepare_volume: "succeeded",
      start_gateway: "succeeded",
      start_host: "succeeded",
      verify_egress: "skipped",
      wait_ssh: "succeeded",
      sync_keys: "succeeded",
    });
    const row = await hostRow(hostId);
    expect(row).toMatchObject({ status: "running" });
    const gw = mem.containers.get(gatewayName(hostId))!;
    expect(row!.management_address).toBe(gw.networks["ccp-mem-mgmt"]);
    expect(running(gatewayName(hostId)) && running(hostContainerName(hostId))).toBe(true);
    // The host started after its gateway, in its namespace, with the home volume on its own disk.
    const host = mem.containers.get(hostContainerName(hostId))!;
    expect(host.joins).toBe(gw.name);
    expect(host.startedAt!.getTime()).toBeGreaterThan(gw.startedAt!.getTime());
    const vol = mem.volumes.get(homeVolumeName(hostId))!;
    expect(vol.options).toMatchObject({ type: "none", o: "bind" });
    expect([...mem.disks.values()]).toContainEqual(expect.objectContaining({ mounted: true }));
    const keys = mem.fileOf(hostContainerName(hostId), "/home/workspace/.ssh/authorized_keys")!.toString();
    expect(keys).toContain(publicKey.split(" ")[1]);
    // The gateway got its configuration before its first start, mode direct.
    expect(mem.fileOf(gw.name, "/etc/ccp/active/mode")!.toString().trim()).toBe("direct");
  });

  it("a start of a running host skips every step and touches no container", async () => {
    const before = mem.calls.length;
    const t = await waitForTask(h, await act(hostId, "start"), 30_000);
    expect(t.status).toBe("succeeded");
    expect(t.steps.every((s: { status: string }) => s.status === "skipped")).toBe(true);
    const ops = mem.calls.slice(before).map((c) => c.op);
    expect(ops.filter((o) => /^(create|start|stop|restart|remove)/.test(o))).toEqual([]);
  });

  it("stop, start and rebuild keep the home; /tmp and the containers do not survive a rebuild", async () => {
    const vol = mem.volumes.get(homeVolumeName(hostId))!;
    vol.files.set("notes.txt", { content: Buffer.from("kept"), mode: 0o644 });
    const stopped = await waitForTask(h, await act(hostId, "stop"), 30_000);
    expect(stopped.status).toBe("succeeded");
    expect(await hostRow(hostId)).toMatchObject({ status: "stopped" });
    expect(running(hostContainerName(hostId)) || running(gatewayName(hostId))).toBe(false);

    const started = await waitForTask(h, await act(hostId, "start"), 30_000);
    expect(started.status, JSON.stringify(started)).toBe("succeeded");
    expect(await hostRow(hostId)).toMatchObject({ status: "running" });
    expect(mem.fileOf(hostContainerName(hostId), "/home/workspace/notes.txt")?.toString()).toBe("kept");

    const oldId = mem.containers.get(hostContainerName(hostId))!.id;
    mem.containers.get(hostContainerName(hostId))!.files.set("/tmp/scratch", { content: Buffer.from("gone"), mode: 0o644 });
    const rebuilt = await waitForTask(h, await act(hostId, "rebuild"), 30_000);
    expect(rebuilt.status, JSON.stringify(rebuilt)).toBe("succeeded");
    expect(stepsOf(rebuilt)).toMatchObject({ remove_containers: "succeeded", wipe_home: "skipped" });
    expect(mem.containers.get(hostContainerName(hostId))!.id).not.toBe(oldId);
    expect(mem.volumes.get(homeVolumeName(hostId))).toBe(vol);
    expect(mem.fileOf(hostContainerName(hostId), "/home/workspace/notes.txt")?.toString()).toBe("kept");
    expect(mem.fileOf(hostContainerName(hostId), "/tmp/scratch")).toBeNull();
  });

  it("rebuild with wipe-home gives a fresh home (and syncs the keys into it)", async () => {
    const t = await waitForTask(h, await act(hostId, "rebuild", { mode: "wipe-home" }), 30_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(stepsOf(t)).toMatchObject({ wipe_home: "succeeded" });
    expect(mem.fileOf(hostContainerName(hostId), "/home/workspace/notes.txt")).toBeNull();
    expect(mem.fileOf(hostContainerName(hostId), "/home/workspace/.ssh/authorized_keys")!.toString()).toContain(publicKey.split(" ")[1]);
  });

  it("a call the engine drops (engine unavailable) is retried, and the retry succeeds", async () => {
    await waitForTask(h, await act(hostId, "stop"), 30_000);
    mem.failNext("createGateway", { error: engineDown, target: gatewayName(hostId) });
    const taskId = await act(hostId, "start");
    const t = await waitForTask(h, taskId, 60_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect((await taskRow(taskId)).attempt).toBe(2);
    expect(await hostRow(hostId)).toMatchObject({ status: "running" });
  });

  it("a permanent refusal fails the task at once and the host closed (containers stopped, host failed)", async () => {
    await waitForTask(h, await act(hostId, "stop"), 30_000);
    mem.failNext("startContainer", { error: () => refused("start: OCI runtime create failed (injected)"), target: hostContainerName(hostId) });
    const taskId = await act(hostId, "start");
    const t = await waitForTask(h, taskId, 30_000);
    expect(t.status).toBe("failed");
    expect(await taskRow(taskId)).toEqual({ attempt: 1, error_code: "container_start_failed" });
    expect(stepsOf(t)).toMatchObject({ start_gateway: "succeeded", start_host: "failed", wait_ssh: "pending" });
    expect(await hostRow(hostId)).toMatchObject({ status: "failed" });
    expect(running(gatewayName(hostId)) || running(hostContainerName(hostId))).toBe(false);
  });

  it("a gateway that reports failed fails the start with tunnel_setup_failed", async () => {
    const off = mem.onExec(({ container, argv }) => {
      if (container.name === gatewayName(hostId) && argv.join(" ") === "ccp-gateway status") container.gatewayStatus = "failed";
      return undefined;
    });
    try {
      const t = await waitForTask(h, await act(hostId, "start"), 30_000);
      expect(t.status).toBe("failed");
      expect(t.error_code).toBe("tunnel_setup_failed");
      expect(await hostRow(hostId)).toMatchObject({ status: "failed" });
    } finally {
      off();
      mem.containers.get(gatewayName(hostId))!.gatewayStatus = "ready";
    }
  });

  it("sshd that never presents the pinned key fails the start with ssh_not_ready", async () => {
    sshBroken = true;
    try {
      const taskId = await act(hostId, "start");
      const t = await waitForTask(h, taskId, 30_000);
      expect(t.status).toBe("failed");
      expect((await taskRow(taskId)).error_code).toBe("ssh_not_ready");
      expect(await hostRow(hostId)).toMatchObject({ status: "failed" });
    } finally {
      sshBroken = false;
    }
    const again = await waitForTask(h, await act(hostId, "start"), 30_000);
    expect(again.status).toBe("succeeded");
  });

  it("a cancel during a step takes effect at the next step boundary: host stopped, nothing running", async () => {
    await waitForTask(h, await act(hostId, "stop"), 30_000);
    const held = mem.hold("startContainer", hostContainerName(hostId));
    const taskId = await act(hostId, "start");
    await held.reached;
    const cancel = await h.request("POST", `/v1/admin/tasks/${taskId}/cancel`, { token: admin });
    expect(cancel.status, cancel.text).toBe(202);
    held.release();
    const t = await waitForTask(h, taskId, 30_000);
    expect(t.status).toBe("canceled");
    expect(stepsOf(t)).toMatchObject({ start_host: "succeeded", verify_egress: "pending", wait_ssh: "pending" });
    expect(await hostRow(hostId)).toMatchObject({ status: "stopped", desired_state: "stopped" });
    expect(running(gatewayName(hostId)) || running(hostContainerName(hostId))).toBe(false);
  });

  it("delete removes both containers, the home volume and its disk", async () => {
    const res = await h.request("DELETE", `/v1/admin/hosts/${hostId}`, { token: admin });
    expect(res.status, res.text).toBe(202);
    const t = await waitForTask(h, res.body.task_id, 30_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(mem.containers.has(gatewayName(hostId)) || mem.containers.has(hostContainerName(hostId))).toBe(false);
    expect(mem.volumes.has(homeVolumeName(hostId))).toBe(false);
    expect([...mem.disks.keys()].some((k) => k.endsWith(`/${hostId}`))).toBe(false);
    expect(await hostRow(hostId)).toBeUndefined();
  });

  it("delete with keep_home keeps the volume and records it as retained", async () => {
    const c = await createHost();
    expect((await waitForTask(h, c.taskId, 30_000)).status).toBe("succeeded");
    const res = await h.request("DELETE", `/v1/admin/hosts/${c.hostId}?keep_home=true`, { token: admin });
    expect(res.status, res.text).toBe(202);
    expect((await waitForTask(h, res.body.task_id, 30_000)).status).toBe("succeeded");
    expect(mem.containers.has(hostContainerName(c.hostId))).toBe(false);
    expect(mem.volumes.has(homeVolumeName(c.hostId))).toBe(true);
    const [kept] = await h.database.sql`select volume_name from retained_volumes where host_id = ${c.hostId}`;
    expect(kept).toMatchObject({ volume_name: homeVolumeName(c.hostId) });
  });

  it("images missing from the engine fail a create with image_missing, before any container exists", async () => {
    const ref = [...mem.images.keys()][0]!;
    const id = mem.images.get(ref)!;
    mem.removeImage(ref);
    try {
      const c = await createHost();
      const t = await waitForTask(h, c.taskId, 30_000);
      expect(t.status).toBe("failed");
      expect((await taskRow(c.taskId)).error_code).toBe("image_missing");
      expect(mem.containers.has(gatewayName(c.hostId))).toBe(false);
    } finally {
      mem.addImage(ref, id);
    }
  });
});
