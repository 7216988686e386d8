import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, type TestUser, createApiHarness } from "../../shared/test/api-harness.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { generateEd25519KeyPair } from "../../shared/ssh/keygen.js";
import { DISK_AGENT_NAME, diskAgentArgv } from "../../worker/hosts/disk.js";

/**
 * Issue 10 §2 "Disk": a host's writes are capped. Its home is a fixed-size ext4 filesystem (a
 * loop-mounted image on the engine's machine, made by the disk agent), /tmp and /var/tmp are
 * tmpfs, and its containers' logs rotate. A tenant filling their disk gets ENOSPC; the API, the
 * worker, Postgres and the other hosts carry on. Failing before: the home was a plain volume on
 * the machine's disk (the last block shows the same write succeeding with HOST_DISK_LIMIT_MB=0).
 */
const DIR = "/var/lib/cloud-cli-proxy/disks";
const CAP_MB = 256;
const LOG_MAX_BYTES = 1024 * 1024;
const LOG_FILES = 2;
const TMPFS_MB = 64;

let h: ApiHarness;
let w: WorkerHarness;
let admin: string;
const hostA = { id: "", user: null as TestUser | null };
const hostB = { id: "", user: null as TestUser | null };

/** A shell line inside a host, as the tenant (uid 1000) unless said otherwise; never throws. */
function inHost(hostId: string, script: string, user = "1000:1000"): { code: number; out: string } {
  const r = spawnSync("docker", ["exec", "-u", user, `ccp-host-${hostId}`, "sh", "-c", script], { encoding: "utf8", maxBuffer: 16 * 2 ** 20 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

const agentPid = () => Number(docker(["inspect", "-f", "{{.State.Pid}}", DISK_AGENT_NAME]));

/** A shell line in the engine's mount namespace, through the agent (as the worker reaches it). */
function onMachine(script: string, ...args: string[]): string {
  const shim = docker(["exec", DISK_AGENT_NAME, "sed", "-n", "s/^PPid:[[:space:]]*//p", `/proc/${agentPid()}/status`]);
  return docker(["exec", DISK_AGENT_NAME, "nsenter", "-t", shim, "-m", "--", "sh", "-c", script, "sh", ...args]);
}

/** What the engine's machine says about a host's disk. */
function diskStatus(hostId: string): { mounted: boolean; image: boolean; loops: number } {
  const out = docker(["exec", DISK_AGENT_NAME, ...diskAgentArgv(agentPid(), "status", DIR, hostId)]).split("\n");
  const loops = onMachine('losetup -a | grep -c -- "$1" || true', hostId);
  return { mounted: out[0] === "mounted", image: out[1] === "image", loops: Number(loops) };
}

async function createHost(body: Record<string, unknown>): Promise<{ id: string; task: string; user: TestUser }> {
  const user = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: user.id, ...body } });
  expect(res.status, res.text).toBe(202);
  return { id: res.body.host.id, task: res.body.task_id, user };
}

async function lifecycle(hostId: string, op: "start" | "stop" | "rebuild", body?: unknown) {
  const res = await h.request("POST", `/v1/admin/hosts/${hostId}/${op}`, { token: admin, body: body ?? {} });
  expect(res.status, res.text).toBe(202);
  return waitForTask(h, res.body.task_id, 180_000);
}

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h, {
    HOST_TMPFS_MB: String(TMPFS_MB),
    CONTAINER_LOG_MAX_SIZE: "1m",
    CONTAINER_LOG_MAX_FILES: String(LOG_FILES),
  });
  admin = await h.adminToken();
  const [a, b] = await Promise.all([createHost({ disk_limit_mb: CAP_MB }), createHost({ disk_limit_mb: CAP_MB })]);
  for (const [x, into] of [[a, hostA], [b, hostB]] as const) {
    into.id = x.id;
    into.user = x.user;
    const t = await waitForTask(h, x.task, 240_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
  }
}, 300_000);

afterAll(async () => {
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

describe("a host's home is a fixed-size filesystem of its own", () => {
  it("the home volume binds a directory inside the host's mounted image; the API shows the size", async () => {
    const [vol] = JSON.parse(docker(["volume", "inspect", `ccp-home-${hostA.id}`])) as { Options: Record<string, string> }[];
    expect(vol!.Options).toEqual({ type: "none", o: "bind", device: `${DIR}/${hostA.id}/home` });
    expect(diskStatus(hostA.id)).toEqual({ mounted: true, image: true, loops: 1 });
    // The filesystem's size is the cap (ext4 keeps a few MiB for its own metadata).
    const size = Number(inHost(hostA.id, "df -Pm /home/workspace | awk 'NR==2 {print $2}'").out.trim());
    expect(size).toBeGreaterThan(CAP_MB - 32);
    expect(size).toBeLessThanOrEqual(CAP_MB);
    // The host user owns the home (the image's init expects it) and got its skeleton files.
    expect(inHost(hostA.id, "stat -c %u:%g /home/workspace && test -f /home/workspace/.bashrc && echo skel").out.trim()).toBe("1000:1000\nskel");
    const res = await h.request("GET", `/v1/admin/hosts/${hostA.id}`, { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(res.body.host.disk_limit_mb).toBe(CAP_MB);
  });

  it("writing past the cap in $HOME fails with ENOSPC; the API, Postgres, the worker and host B carry on", async () => {
    expect(inHost(hostA.id, "echo keep-me > /home/workspace/marker").code).toBe(0);
    const fill = inHost(hostA.id, "dd if=/dev/zero of=/home/workspace/fill bs=1M count=400");
    expect(fill.code, fill.out).not.toBe(0);
    expect(fill.out).toMatch(/No space left on device/);
    // The last MiB, block by block (a filesystem this small has 1 KiB blocks): none is left.
    expect(inHost(hostA.id, "dd if=/dev/zero of=/home/workspace/fill2 bs=1k").out).toMatch(/No space left on device/);
    expect(inHost(hostA.id, "sync; df -Pk /home/workspace | awk 'NR==2 {print $4}'").out.trim()).toBe("0");
    // The image on the machine's disk is no bigger than the cap.
    const img = statSync(`${DIR}/${hostA.id}.img`);
    expect(img.blocks * 512).toBeLessThanOrEqual(CAP_MB * 2 ** 20);

    // While A is full:
    expect((await h.request("GET", "/healthz")).status).toBe(200);
    expect((await h.database.sql<{ one: number }[]>`select 1 as one`)[0]!.one).toBe(1);
    const u = await h.createUser();
    expect(u.id).toMatch(/^[0-9a-f-]{36}$/);
    const list = await h.request("GET", "/v1/admin/hosts", { token: admin });
    expect(list.status, list.text).toBe(200);
    expect(list.body.hosts.map((x: { id: string }) => x.id)).toEqual(expect.arrayContaining([hostA.id, hostB.id]));
    const b = inHost(hostB.id, "dd if=/dev/zero of=/home/workspace/mine bs=1M count=64 2>&1 && echo wrote");
    expect(b.code, b.out).toBe(0);
    expect(b.out).toMatch(/wrote/);
    expect((await lifecycle(hostB.id, "stop")).status).toBe("succeeded");
    const started = await lifecycle(hostB.id, "start");
    expect(started.status, JSON.stringify(started)).toBe("succeeded");
    expect(inHost(hostB.id, "test -f /home/workspace/mine && echo kept").out.trim()).toBe("kept");
  });

  it("/tmp and /var/tmp are tmpfs of HOST_TMPFS_MB: filling them is ENOSPC too, not the engine's disk", () => {
    for (const dir of ["/tmp", "/var/tmp"]) {
      expect(inHost(hostA.id, `stat -f -c %T ${dir}`).out.trim()).toBe("tmpfs");
      const r = inHost(hostA.id, `dd if=/dev/zero of=${dir}/fill bs=1M count=${TMPFS_MB * 2}; rm -f ${dir}/fill`);
      expect(r.out).toMatch(/No space left on device/);
    }
  });

  it("a rebuild keeps the (full) home; the key sync tolerates it", async () => {
    // A new key cannot be written into the full home: the sync only warns (host_disk_full) …
    const { publicKey } = generateEd25519KeyPair("disk-full-key");
    const added = await h.request("POST", "/v1/user/ssh-keys", { token: hostA.user!.token, body: { public_key: publicKey } });
    expect(added.status, added.text).toBe(201);
    const [sync] = await h.database.sql<{ id: string }[]>`
      select id from tasks where host_id = ${hostA.id} and kind = 'host.sync-keys' order by created_at desc limit 1`;
    const synced = await waitForTask(h, sync!.id, 90_000);
    expect(synced.error_code, JSON.stringify(synced)).toBe("host_disk_full");
    // … and a rebuild, whose own key sync meets the same full disk, still brings the host up.
    const t = await lifecycle(hostA.id, "rebuild", { mode: "preserve-home" });
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    // Stopping the old container may free a few blocks (the desktop's files): then the rebuild's
    // sync fits and installs the key; otherwise it is skipped with the warning. Never a failure.
    const syncStep = t.steps.find((s: { name: string }) => s.name === "sync_keys").status as string;
    expect(["skipped", "succeeded"]).toContain(syncStep);
    const events = await h.database.sql<{ n: number }[]>`
      select count(*)::int as n from events where host_id = ${hostA.id} and type = 'host.keys.sync_failed'
        and metadata->>'error_code' = 'host_disk_full' and task_id = ${t.id}`;
    if (syncStep === "skipped") expect(events[0]!.n).toBe(1);
    else expect(inHost(hostA.id, "cat /home/workspace/.ssh/authorized_keys").out).toContain(publicKey.split(" ")[1]!);
    expect(inHost(hostA.id, "cat /home/workspace/marker").out.trim()).toBe("keep-me");
    expect(inHost(hostA.id, "test -f /home/workspace/fill && echo still-there").out.trim()).toBe("still-there");
  });

  it("after the machine loses the mount (a reboot), the container cannot start on the bare disk; the worker's start mounts it again", async () => {
    expect((await lifecycle(hostA.id, "stop")).status).toBe("succeeded");
    onMachine('umount "$1"', `${DIR}/${hostA.id}`);
    expect(diskStatus(hostA.id).mounted).toBe(false);
    // Started behind the worker's back (gateway first, so only the home can stop it): the bind's
    // directory does not exist without the mount, so nothing lands on the machine's own disk.
    docker(["start", `ccp-gw-${hostA.id}`]);
    const raw = spawnSync("docker", ["start", `ccp-host-${hostA.id}`], { encoding: "utf8" });
    expect(raw.status, raw.stdout).not.toBe(0);
    expect(raw.stderr).toMatch(/no such file or directory/i);
    const t = await lifecycle(hostA.id, "start");
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(diskStatus(hostA.id).mounted).toBe(true);
    expect(inHost(hostA.id, "cat /home/workspace/marker").out.trim()).toBe("keep-me");
  });

  it("a wipe-home rebuild starts on a fresh, empty filesystem of the same size", async () => {
    const t = await lifecycle(hostA.id, "rebuild", { mode: "wipe-home" });
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(inHost(hostA.id, "test -e /home/workspace/marker && echo present || echo gone").out.trim()).toBe("gone");
    const free = Number(inHost(hostA.id, "df -Pm /home/workspace | awk 'NR==2 {print $4}'").out.trim());
    expect(free).toBeGreaterThan(CAP_MB / 2);
    expect(diskStatus(hostA.id)).toEqual({ mounted: true, image: true, loops: 1 });
  });

  it("deleting the host unmounts its filesystem and deletes its image", async () => {
    const res = await h.request("DELETE", `/v1/admin/hosts/${hostA.id}`, { token: admin });
    expect(res.status, res.text).toBe(202);
    expect((await waitForTask(h, res.body.task_id, 120_000)).status).toBe("succeeded");
    expect(diskStatus(hostA.id)).toEqual({ mounted: false, image: false, loops: 0 });
    const leftover = onMachine('test -e "$1" && echo left || echo gone', `${DIR}/${hostA.id}`);
    expect(leftover).toBe("gone");
  });
});

describe("container logs rotate", () => {
  it("host and gateway use json-file with max-size and max-file", () => {
    for (const name of [`ccp-host-${hostB.id}`, `ccp-gw-${hostB.id}`]) {
      const cfg = JSON.parse(docker(["inspect", "-f", "{{json .HostConfig.LogConfig}}", name]));
      expect(cfg).toEqual({ Type: "json-file", Config: { "max-size": "1m", "max-file": String(LOG_FILES) } });
    }
  });

  it("a host printing 8 MiB to its PID 1's stdout keeps at most max-size × max-file on the engine's disk", () => {
    const name = `ccp-host-${hostB.id}`;
    const r = inHost(hostB.id, "dd if=/dev/zero bs=1M count=6 2>/dev/null | base64 > /proc/1/fd/1", "0:0");
    expect(r.code, r.out).toBe(0);
    const logPath = docker(["inspect", "-f", "{{.LogPath}}", name]);
    const size = (p: string) => {
      try {
        return statSync(p).size;
      } catch {
        return 0;
      }
    };
    const files = [logPath, ...Array.from({ length: LOG_FILES + 1 }, (_, i) => `${logPath}.${i + 1}`)];
    const sizes = files.map(size);
    // Rotated at least once (so the output really went through the log), never beyond the cap.
    expect(sizes[1], JSON.stringify(sizes)).toBeGreaterThan(0);
    expect(sizes[LOG_FILES], JSON.stringify(sizes)).toBe(0);
    // One line of slack: the file rotates after the write that crossed max-size.
    expect(sizes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(LOG_MAX_BYTES * LOG_FILES + 4096);
  });
});

describe("HOST_DISK_LIMIT_MB=0 (failing before: the home is a plain volume on the machine's disk)", () => {
  let hostC = "";

  it("the same write past 256 MiB succeeds in an uncapped home", async () => {
    await w.stop();
    w = await startTestWorker(h, { HOST_DISK_LIMIT_MB: "0" });
    const c = await createHost({});
    hostC = c.id;
    const t = await waitForTask(h, c.task, 240_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    const [vol] = JSON.parse(docker(["volume", "inspect", `ccp-home-${hostC}`])) as { Options: Record<string, string> | null }[];
    expect(vol!.Options ?? {}).toEqual({});
    const fill = inHost(hostC, "dd if=/dev/zero of=/home/workspace/fill bs=1M count=300 2>&1 && echo wrote");
    expect(fill.code, fill.out).toBe(0);
    expect(fill.out).toMatch(/wrote/);
  });

  it("such a home is kept as it is (uncapped, data intact) when the cap is turned on later", async () => {
    await w.stop();
    w = await startTestWorker(h, {});
    expect((await lifecycle(hostC, "stop")).status).toBe("succeeded");
    const t = await lifecycle(hostC, "start");
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(inHost(hostC, "test -f /home/workspace/fill && echo kept").out.trim()).toBe("kept");
    expect(w.logs.join("")).toMatch(/predates the disk cap/);
    inHost(hostC, "rm -f /home/workspace/fill");
  });
});
