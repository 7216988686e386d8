import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import {
  docker,
  instanceObjects,
  removeInstanceObjects,
  startTestWorker,
  waitForTask,
  type WorkerHarness,
} from "../../shared/test/worker-harness.js";

let h: ApiHarness;
let w: WorkerHarness;
let admin: string;

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h);
  admin = await h.adminToken();
});
afterAll(async () => {
  await w?.stop();
  removeInstanceObjects(h.prefix);
  await h?.close();
});

function banner(ip: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(22, ip);
    s.setTimeout(5000, () => s.destroy(new Error("timeout")));
    s.once("data", (d) => {
      s.destroy();
      resolve(String(d).split("\r\n")[0]!);
    });
    s.on("error", reject);
  });
}

async function mgmtAddress(hostId: string): Promise<string> {
  const [row] = await h.database.sql<{ management_address: string }[]>`select management_address from hosts where id = ${hostId}`;
  return row!.management_address;
}

describe("host lifecycle on the real engine", () => {
  let hostId: string;
  let userId: string;

  it("creates a host that reaches running with sshd answering on the management address", async () => {
    const u = await h.createUser();
    userId = u.id;
    const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
    expect(res.status, res.text).toBe(202);
    expect(res.body.host).toMatchObject({ status: "pending", memory_limit_mb: 4096, cpu_limit: 2, pids_limit: 1024, timezone: "UTC" });
    expect(res.body.host.short_id).toMatch(/^[a-z0-9]{6}$/);
    hostId = res.body.host.id;
    const task = await waitForTask(h, res.body.task_id);
    expect(task.status, JSON.stringify(task)).toBe("succeeded");
    expect(task.steps.map((s: { name: string }) => s.name)).toEqual([
      "check_images", "prepare_keys", "prepare_volume", "start_gateway", "start_host", "verify_egress", "wait_ssh", "sync_keys",
    ]);
    const get = await h.request("GET", `/v1/admin/hosts/${hostId}`, { token: admin });
    expect(get.body.host.status).toBe("running");
    expect(await banner(await mgmtAddress(hostId))).toMatch(/^SSH-2\.0-OpenSSH/);
    expect(instanceObjects(h.prefix).containers).toEqual([`ccp-gw-${hostId}`, `ccp-host-${hostId}`].sort());
  });

  it("runs the host container without capabilities in the gateway's namespace", () => {
    const info = JSON.parse(docker(["inspect", `ccp-host-${hostId}`]))[0];
    const gwId = docker(["inspect", "-f", "{{.Id}}", `ccp-gw-${hostId}`]);
    // The engine records the gateway by id once the container exists.
    expect([`container:ccp-gw-${hostId}`, `container:${gwId}`]).toContain(info.HostConfig.NetworkMode);
    expect(info.HostConfig.CapAdd ?? []).toEqual([]);
    expect(info.HostConfig.CapDrop).toContain("NET_RAW");
    expect(info.HostConfig.SecurityOpt).toContain("no-new-privileges");
    expect(info.HostConfig.Memory).toBe(4096 * 1024 * 1024);
    expect(info.HostConfig.PidsLimit).toBe(1024);
    expect(info.HostConfig.RestartPolicy.Name).toBe("no");
    const gw = JSON.parse(docker(["inspect", `ccp-gw-${hostId}`]))[0];
    expect(gw.HostConfig.CapAdd).toContain("NET_ADMIN");
    expect(JSON.stringify(info.Config.Env)).not.toMatch(/PRIVATE|password/i);
  });

  it("stops and starts", async () => {
    const stop = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect(stop.status, stop.text).toBe(202);
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
    expect((await h.request("GET", `/v1/admin/hosts/${hostId}`, { token: admin })).body.host.status).toBe("stopped");
    expect(docker(["inspect", "-f", "{{.State.Running}}", `ccp-host-${hostId}`])).toBe("false");
    const start = await h.request("POST", `/v1/admin/hosts/${hostId}/start`, { token: admin });
    expect((await waitForTask(h, start.body.task_id)).status).toBe("succeeded");
    expect((await h.request("GET", `/v1/admin/hosts/${hostId}`, { token: admin })).body.host.status).toBe("running");
    expect(await banner(await mgmtAddress(hostId))).toMatch(/^SSH-2\.0-OpenSSH/);
  });

  it("a start of a running host skips every step without touching the containers", async () => {
    const before = docker(["inspect", "-f", "{{.State.StartedAt}}", `ccp-host-${hostId}`]);
    const start = await h.request("POST", `/v1/admin/hosts/${hostId}/start`, { token: admin });
    const t = await waitForTask(h, start.body.task_id);
    expect(t.status).toBe("succeeded");
    expect(t.steps.every((s: { status: string }) => s.status === "skipped")).toBe(true);
    expect(docker(["inspect", "-f", "{{.State.StartedAt}}", `ccp-host-${hostId}`])).toBe(before);
  });

  it("rebuild keeps the home, loses /tmp; wipe-home loses the home", async () => {
    docker(["exec", "-u", "workspace", `ccp-host-${hostId}`, "sh", "-c", "echo kept > /home/workspace/file.txt; echo gone > /tmp/t.txt"]);
    const r1 = await h.request("POST", `/v1/admin/hosts/${hostId}/rebuild`, { token: admin });
    expect((await waitForTask(h, r1.body.task_id)).status).toBe("succeeded");
    expect(docker(["exec", `ccp-host-${hostId}`, "cat", "/home/workspace/file.txt"])).toBe("kept");
    expect(() => docker(["exec", `ccp-host-${hostId}`, "cat", "/tmp/t.txt"])).toThrow();
    const bad = await h.request("POST", `/v1/admin/hosts/${hostId}/rebuild`, { token: admin, body: { mode: "foo" } });
    expect(bad.status).toBe(400);
    const r2 = await h.request("POST", `/v1/admin/hosts/${hostId}/rebuild`, { token: admin, body: { mode: "wipe-home" } });
    expect((await waitForTask(h, r2.body.task_id)).status).toBe("succeeded");
    expect(() => docker(["exec", `ccp-host-${hostId}`, "cat", "/home/workspace/file.txt"])).toThrow();
    expect(await banner(await mgmtAddress(hostId))).toMatch(/^SSH-2\.0-OpenSSH/);
  });

  it("deletes the host: no container, gateway or volume remains", async () => {
    const del = await h.request("DELETE", `/v1/admin/hosts/${hostId}`, { token: admin });
    expect(del.status, del.text).toBe(202);
    const again = await h.request("DELETE", `/v1/admin/hosts/${hostId}`, { token: admin });
    expect(again.body.task_id).toBe(del.body.task_id);
    expect((await waitForTask(h, del.body.task_id)).status).toBe("succeeded");
    expect((await h.request("GET", `/v1/admin/hosts/${hostId}`, { token: admin })).status).toBe(404);
    expect(instanceObjects(h.prefix)).toEqual({ containers: [], volumes: [] });
    void userId;
  });
});
