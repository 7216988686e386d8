import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWorkerConfig, type WorkerConfig } from "../../shared/config/worker.js";
import { createLogger } from "../../shared/logger.js";
import { generateEd25519KeyPair } from "../../shared/ssh/keygen.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { waitUntil } from "../../shared/test/processes.js";
import { waitForTask } from "../../shared/test/worker-harness.js";
import type { WorkerDeps } from "../../worker/deps.js";
import { gatewayName, homeVolumeName, hostContainerName } from "../../worker/hosts/names.js";
import { startWorker } from "../../worker/main.js";
import type { PoolKeeper } from "../../worker/pool/keeper.js";
import { MemoryRuntime } from "../../worker/runtime/memory/memory-runtime.js";
import { runReconcile } from "../../worker/schedulers/reconcile.js";

/**
 * The warm pool (docs/architecture.md#warm-pool) on the in-memory runtime: fill, claim (and the
 * fast path of host.create), concurrent claims with SKIP LOCKED, shape mismatches and an empty
 * pool going cold, image changes draining, the reconciler owning members, and nothing left once
 * the pool is emptied. test/docker/host-pool.test.ts proves the same on the real engine.
 *
 * Unbound hosts are blocked (the pool's own mode) and the egress checks are not configured, so
 * a claimed host that stays blocked has nothing to verify.
 */
let h: ApiHarness;
let admin: string;
let deps: WorkerDeps;
let pool: PoolKeeper;
let stopWorker: () => Promise<void>;
const mem = new MemoryRuntime();
/** The worker's own config object: a test changes the pool size (or the policy) by writing it. */
let config: { -readonly [K in keyof WorkerConfig]: WorkerConfig[K] };

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  config = parseWorkerConfig({
    ...h.env,
    DOCKER_SOCKET: "/nonexistent/ccp-memory-runtime/docker.sock",
    MGMT_NETWORK: "ccp-mem-mgmt",
    EGRESS_UNDERLAY_NETWORK: "ccp-mem-underlay",
    EGRESS_UNBOUND_POLICY: "block",
    // No probes run in memory: the checks are off (blocked hosts then have nothing to verify).
    EGRESS_CHECK_URL: "",
    EGRESS_ECHO_URL: "",
    EGRESS_DNS_CANARY_DOMAIN: "",
    EGRESS_DNS_CANARY_API: "",
    EGRESS_DNS_CANARY_API_SECRET: "",
    EGRESS_CHECK_FORBIDDEN_RESOLVER: "",
    EGRESS_DEFAULT_DNS_SERVER: "",
    HEARTBEAT_INTERVAL_SECONDS: "1",
    RECONCILE_INTERVAL_SECONDS: "3600",
    EXPIRY_SCAN_INTERVAL_SECONDS: "3600",
    SWEEP_INTERVAL_SECONDS: "3600",
    CONTAINER_STOP_GRACE_SECONDS: "1",
    SSH_READY_TIMEOUT_SECONDS: "2",
    HOST_DISK_LIMIT_MB: "1024",
    WORKER_CONCURRENCY: "4",
    HOST_POOL_SIZE: "2",
  });
  mem.addImage(config.HOST_IMAGE);
  mem.addImage(config.GATEWAY_IMAGE);
  const logger = createLogger({ level: "warn" }, new Writable({ write: (_c, _e, cb) => cb() }));
  const w = await startWorker(config, logger, { database: h.database, runtime: mem, sshProbe: mem.sshProbe });
  deps = w.deps;
  pool = w.pool;
  stopWorker = w.stop;
});
afterAll(async () => {
  await stopWorker?.();
  await h?.close();
});

type Member = { id: string; state: string; short_id: string; image_id: string | null; host_key_public: string };
const members = async () =>
  h.database.sql<Member[]>`select id, state, short_id, image_id, host_key_public from host_pool order by created_at`;
/** Wait until the pool holds exactly `n` members, all ready; returns them. */
const poolReady = (n: number) =>
  waitUntil(`${n} ready pool members`, 20_000, async () => {
    pool.kick();
    const m = await members();
    return m.length === n && m.every((r) => r.state === "ready") ? m : undefined;
  });
const running = (name: string) => mem.containers.get(name)?.running === true;
const stepsOf = (t: { steps: { name: string; status: string }[] }) => Object.fromEntries(t.steps.map((s) => [s.name, s.status]));

async function createHost(body: Record<string, unknown> = {}) {
  const u = await h.createUser();
  const key = generateEd25519KeyPair("pool-test");
  const k = await h.request("POST", `/v1/admin/users/${u.id}/ssh-keys`, { token: admin, body: { public_key: key.publicKey } });
  expect(k.status, k.text).toBe(201);
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id, ...body } });
  expect(res.status, res.text).toBe(202);
  return { hostId: res.body.host.id as string, shortId: res.body.host.short_id as string, taskId: res.body.task_id as string, publicKey: key.publicKey };
}

async function deleteHost(hostId: string) {
  const res = await h.request("DELETE", `/v1/admin/hosts/${hostId}`, { token: admin });
  expect(res.status, res.text).toBe(202);
  expect((await waitForTask(h, res.body.task_id, 30_000)).status).toBe("succeeded");
}

const FAST_STEPS = {
  check_images: "skipped",
  prepare_keys: "skipped",
  prepare_volume: "skipped",
  start_gateway: "skipped",
  start_host: "skipped",
  verify_egress: "skipped",
  wait_ssh: "succeeded",
  sync_keys: "succeeded",
};

describe("warm pool on the in-memory runtime", () => {
  const made: string[] = [];

  it("fills to HOST_POOL_SIZE with running, blocked pairs on fresh capped homes, invisible as hosts", async () => {
    const m = await poolReady(2);
    for (const { id } of m) {
      expect(running(gatewayName(id)) && running(hostContainerName(id))).toBe(true);
      expect(mem.fileOf(gatewayName(id), "/etc/ccp/active/mode")!.toString().trim()).toBe("blocked");
      expect(mem.volumes.get(homeVolumeName(id))!.options).toMatchObject({ type: "none", o: "bind" });
      expect(mem.containers.get(hostContainerName(id))!.joins).toBe(gatewayName(id));
    }
    const list = await h.request("GET", "/v1/admin/hosts", { token: admin });
    expect(list.body.hosts).toEqual([]);
    const stats = await h.request("GET", "/v1/admin/dashboard/stats", { token: admin });
    expect(stats.body.pool).toEqual({ ready: 2, warming: 0 });
    expect(stats.body.hosts.total).toBe(0);
  });

  it("a create of the default shape claims a member: same containers, personalised, then the pool refills", async () => {
    const before = await poolReady(2);
    const ids = new Set(before.map((m) => m.id));
    const containerIds = new Map(before.map((m) => [m.id, mem.containers.get(hostContainerName(m.id))!.id]));
    const c = await createHost();
    made.push(c.hostId);
    expect(ids.has(c.hostId)).toBe(true);
    const member = before.find((m) => m.id === c.hostId)!;
    expect(c.shortId).toBe(member.short_id);
    const t = await waitForTask(h, c.taskId, 30_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(stepsOf(t)).toEqual(FAST_STEPS);
    expect(mem.containers.get(hostContainerName(c.hostId))!.id).toBe(containerIds.get(c.hostId));
    const [row] = await h.database.sql<{ status: string; host_key_public: string; management_address: string; image_id: string }[]>`
      select status, host_key_public, management_address, image_id from hosts where id = ${c.hostId}`;
    expect(row).toMatchObject({ status: "running", host_key_public: member.host_key_public, image_id: member.image_id });
    expect(row!.management_address).toBe(mem.containers.get(gatewayName(c.hostId))!.networks["ccp-mem-mgmt"]);
    const keys = mem.fileOf(hostContainerName(c.hostId), "/home/workspace/.ssh/authorized_keys")!.toString();
    expect(keys).toContain(c.publicKey.split(" ")[1]);
    // The keys the proxy uses decrypt where they now live (re-bound to the hosts row at claim).
    const [enc] = await h.database.sql<{ internal_key_private_enc: string }[]>`select internal_key_private_enc from hosts where id = ${c.hostId}`;
    expect(() => deps.secrets.decrypt(enc!.internal_key_private_enc, { table: "hosts", column: "internal_key_private_enc", row: c.hostId })).not.toThrow();
    // The member left the pool; a new one replaces it.
    const after = await poolReady(2);
    expect(after.map((m) => m.id)).not.toContain(c.hostId);
    expect(after.filter((m) => ids.has(m.id))).toHaveLength(1);
  });

  it("a burst of creates claims distinct members (SKIP LOCKED) and the rest go cold", async () => {
    const ids = new Set((await poolReady(2)).map((m) => m.id));
    const burst = await Promise.all([0, 1, 2, 3].map(() => createHost()));
    made.push(...burst.map((b) => b.hostId));
    const claimed = burst.filter((b) => ids.has(b.hostId));
    expect(claimed).toHaveLength(2);
    expect(new Set(claimed.map((b) => b.hostId)).size).toBe(2);
    for (const b of burst) {
      const t = await waitForTask(h, b.taskId, 30_000);
      expect(t.status, JSON.stringify(t)).toBe("succeeded");
      if (ids.has(b.hostId)) expect(stepsOf(t)).toEqual(FAST_STEPS);
      else expect(stepsOf(t)).toMatchObject({ check_images: "succeeded", prepare_volume: "succeeded", start_gateway: "succeeded" });
    }
    await poolReady(2);
  });

  it("a create of another shape goes cold and leaves the pool alone", async () => {
    const before = (await poolReady(2)).map((m) => m.id);
    for (const body of [{ memory_limit_mb: 2048 }, { timezone: "Europe/Berlin" }, { pids_limit: 512 }, { disk_limit_mb: 2048 }]) {
      const c = await createHost(body);
      made.push(c.hostId);
      expect(before).not.toContain(c.hostId);
      const t = await waitForTask(h, c.taskId, 30_000);
      expect(t.status).toBe("succeeded");
      expect(stepsOf(t).check_images).toBe("succeeded");
    }
    expect((await members()).map((m) => m.id)).toEqual(before);
  });

  it("an explicit disk size equal to the members' homes claims one", async () => {
    const ids = (await poolReady(2)).map((m) => m.id);
    const c = await createHost({ disk_limit_mb: 1024 });
    made.push(c.hostId);
    expect(ids).toContain(c.hostId);
    expect((await waitForTask(h, c.taskId, 30_000)).status).toBe("succeeded");
  });

  it("with EGRESS_UNBOUND_POLICY=direct the claimed gateway gets its mode live", async () => {
    const ids = (await poolReady(2)).map((m) => m.id);
    config.EGRESS_UNBOUND_POLICY = "direct";
    config.EGRESS_DEFAULT_DNS_SERVER = "192.0.2.53";
    try {
      const c = await createHost();
      made.push(c.hostId);
      expect(ids).toContain(c.hostId);
      const t = await waitForTask(h, c.taskId, 30_000);
      expect(t.status, JSON.stringify(t)).toBe("succeeded");
      expect(stepsOf(t)).toEqual({ ...FAST_STEPS, start_gateway: "succeeded" });
      expect(mem.fileOf(gatewayName(c.hostId), "/etc/ccp/active/mode")!.toString().trim()).toBe("direct");
    } finally {
      config.EGRESS_UNBOUND_POLICY = "block";
    }
    // Members stay blocked whatever the policy: only a claim opens one.
    for (const m of await poolReady(2)) expect(mem.fileOf(gatewayName(m.id), "/etc/ccp/active/mode")!.toString().trim()).toBe("blocked");
  });

  it("an image change drains every member and refills from the new image", async () => {
    const old = (await poolReady(2)).map((m) => m.id);
    mem.addImage(config.HOST_IMAGE, `sha256:${"a".repeat(64)}`);
    const fresh = await waitUntil("members of the new image", 20_000, async () => {
      pool.kick();
      const m = await members();
      return m.length === 2 && m.every((r) => r.state === "ready" && r.image_id === `sha256:${"a".repeat(64)}`) ? m : undefined;
    });
    expect(fresh.map((m) => m.id).filter((id) => old.includes(id))).toEqual([]);
    for (const id of old) {
      expect(mem.containers.has(gatewayName(id)) || mem.containers.has(hostContainerName(id)) || mem.volumes.has(homeVolumeName(id))).toBe(false);
    }
  });

  it("the reconciler removes a ready member whose host container stopped, and a lost claim; the pool refills", async () => {
    const [a, b] = await poolReady(2);
    mem.crash(hostContainerName(a!.id));
    // A claim whose host row is gone (and whose create never came): claimed a while ago, no host.
    await h.database.sql`update host_pool set state = 'claimed', claimed_at = now() - interval '5 minutes' where id = ${b!.id}`;
    const r = await runReconcile(deps);
    expect(r.pool).toBe(2);
    for (const id of [a!.id, b!.id]) {
      expect(mem.containers.has(gatewayName(id)) || mem.containers.has(hostContainerName(id)) || mem.volumes.has(homeVolumeName(id))).toBe(false);
    }
    const events = await h.database.sql<{ n: number }[]>`select count(*)::int as n from events where type = 'reconcile.pool.removed'`;
    expect(events[0]!.n).toBe(2);
    const refilled = await poolReady(2);
    expect(refilled.map((m) => m.id)).not.toContain(a!.id);
    // Healthy members and their objects are never taken for orphans.
    const again = await runReconcile(deps);
    expect(again).toMatchObject({ orphans: 0, pool: 0 });
    expect((await members()).map((m) => m.id)).toEqual(refilled.map((m) => m.id));
  });

  it("deleting every host and emptying the pool leaves no container, volume or disk", async () => {
    for (const id of made) await deleteHost(id);
    config.HOST_POOL_SIZE = 0;
    await waitUntil("an empty pool", 20_000, async () => {
      pool.kick();
      return (await members()).length === 0 ? true : undefined;
    });
    const left = [...mem.containers.values()].filter((c) => c.kind !== "disk-agent").map((c) => c.name);
    expect(left).toEqual([]);
    expect([...mem.volumes.keys()]).toEqual([]);
    expect([...mem.disks.values()].filter((d) => d.mounted)).toEqual([]);
  });
});
