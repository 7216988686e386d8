import { afterAll, beforeAll, describe, expect, it } from "vitest";
import Docker from "dockerode";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { dockerodeOptions, registerTestEngine, removeInstanceFromEngine, startEngines, stopEngines, type TestEngine } from "../../shared/test/engines.js";
import { waitUntil } from "../../shared/test/processes.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { gatewayName, hostContainerName } from "../../worker/hosts/names.js";
import { bind, canary, createEgress, execIn, gatewayOf, gatewayStatus, hostOf, type Lab, labUp, labWorkerEnv, randomLabel, sentinel, underlayIp, until } from "./egress-lab.js";

/**
 * Draining an engine whose host has data in its home and an egress bound (issue 13,
 * docs/engines.md#drain): the host lands on another engine with its data, short id, binding and
 * SSH host key, and there the egress leak drills pass — exit address, DNS only from the egress,
 * the forbidden resolver unanswered, nothing from the gateway's own address in the lab's logs.
 *
 * The source is a lab engine (test/lab/engines.sh), whose underlay does not reach the egress lab:
 * bound there, the host is blocked (fail-closed), which is also what the drill checks first. The
 * target is this machine's engine, which reaches the lab.
 */
let lab: Lab;
let eng1: TestEngine;
let startedHere: string[] = [];
let h: ApiHarness;
let admin: string;
const workers: WorkerHarness[] = [];

beforeAll(async () => {
  lab = labUp();
  const up = await startEngines(1);
  eng1 = up.engines[0]!;
  startedHere = up.started;
  h = await createApiHarness();
  admin = await h.adminToken();
  await registerTestEngine(h, eng1);
  workers.push(await startTestWorker(h, labWorkerEnv(lab)));
  workers.push(
    await startTestWorker(h, {
      ...labWorkerEnv(lab),
      ENGINE_ID: eng1.id,
      MGMT_NETWORK: eng1.mgmt.network,
      MGMT_SUBNET: eng1.mgmt.subnet,
      EGRESS_UNDERLAY_NETWORK: "ccp-eng-underlay",
      HOST_DISK_LIMIT_MB: "0",
    }),
  );
}, 600_000);

afterAll(async () => {
  for (const w of workers.splice(0)) await w.stop().catch(() => {});
  if (eng1 && h) await removeInstanceFromEngine(eng1, h.prefix);
  if (h) removeInstanceObjects(h.prefix);
  await stopEngines(startedHere);
  await h?.close();
}, 300_000);

describe("draining an engine whose host has an egress bound", () => {
  it("the host lands on another engine with its home, short id, binding and host key, and the leak drills pass there", async () => {
    // Only eng1 takes creates: the default engine is cordoned for the create, then open again.
    expect((await h.request("POST", "/v1/admin/engines/default/cordon", { token: admin })).status).toBe(200);
    const u = await h.createUser();
    const created = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
    expect(created.status, created.text).toBe(202);
    expect(created.body.host.engine_id).toBe("eng1");
    const hostId = created.body.host.id as string;
    expect((await waitForTask(h, created.body.task_id, 300_000)).status).toBe("succeeded");
    expect((await h.request("POST", "/v1/admin/engines/default/uncordon", { token: admin })).status).toBe(200);

    // 8 MiB of random data in the home, and its checksum.
    const onEng1 = workers[1]!.deps.runtime;
    const wrote = await onEng1.exec(
      hostContainerName(hostId),
      ["sh", "-c", "head -c 8388608 /dev/urandom > ~/blob && sha256sum ~/blob | cut -d' ' -f1"],
      { user: "workspace" },
    );
    expect(wrote.exitCode, wrote.stderr).toBe(0);
    const sum = wrote.stdout.trim();
    const keyOnEng1 = (await onEng1.exec(hostContainerName(hostId), ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])).stdout.trim();
    const [before] = await h.database.sql<{ short_id: string; host_key_public: string }[]>`select short_id, host_key_public from hosts where id = ${hostId}`;

    // Bound on eng1, whose underlay does not reach the egress: the host stays blocked (fail-closed).
    const egressId = await createEgress(h, lab.wireguard.egress);
    const b = await bind(h, hostId, egressId);
    const apply = b.taskId ? await waitForTask(h, b.taskId, 300_000) : null;
    // It fails closed: the apply fails egress_unreachable and the host no longer runs there.
    expect(apply, "a live host gets an apply task").not.toBeNull();
    expect(apply).toMatchObject({ status: "failed", error_code: "egress_unreachable" });
    const [stopped] = await h.database.sql<{ status: string }[]>`select status from hosts where id = ${hostId}`;
    expect(stopped!.status).not.toBe("running");
    expect((await onEng1.inspectContainer(hostContainerName(hostId)))?.running).toBe(false);

    // Drain eng1: one move, to the only other engine.
    const t0 = Date.now();
    const drain = await h.request("POST", "/v1/admin/engines/eng1/drain", { token: admin });
    expect(drain.status, drain.text).toBe(200);
    const move = await waitUntil("the drain's move task", 60_000, async () => {
      const [t] = await h.database.sql<{ id: string }[]>`select id from tasks where host_id = ${hostId} and kind = 'host.move'`;
      return t?.id;
    });
    const moved = await waitForTask(h, move, 600_000);
    expect(moved.status, JSON.stringify(moved)).toBe("succeeded");
    console.log(`engines: drained eng1 (one host, 8 MiB home, WireGuard bound) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // Moved as it was (not running); started there, its egress is applied and verified.
    const start = await h.request("POST", `/v1/admin/hosts/${hostId}/start`, { token: admin });
    expect(start.status, start.text).toBe(202);
    const started = await waitForTask(h, start.body.task_id, 300_000);
    expect(started.status, JSON.stringify(started)).toBe("succeeded");
    const [after] = await h.database.sql<{ engine_id: string; status: string; short_id: string; host_key_public: string }[]>`
      select engine_id, status, short_id, host_key_public from hosts where id = ${hostId}`;
    expect(after).toMatchObject({ engine_id: "default", status: "running", short_id: before!.short_id, host_key_public: before!.host_key_public });
    // The same binding, to the same egress, as the admin API shows it.
    const detail = await h.request("GET", `/v1/admin/hosts/${hostId}`, { token: admin });
    expect(detail.status, detail.text).toBe(200);
    expect(detail.body.host).toMatchObject({ binding_id: b.bindingId, engine_id: "default", egress: { id: egressId } });
    expect(execIn(hostOf(hostId), ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout).toBe(keyOnEng1);
    expect(execIn(hostOf(hostId), ["sh", "-c", "sha256sum ~/blob | cut -d' ' -f1"], { user: "workspace" }).stdout).toBe(sum);

    // The leak drills on the new engine.
    const since = new Date();
    const status = await until(() => gatewayStatus(gatewayOf(hostId)), (s) => s.mode === "wireguard" && s.status === "ready", 60_000);
    expect(status).toMatchObject({ mode: "wireguard", status: "ready" });
    const gwIp = underlayIp(gatewayOf(hostId), lab.networks.inet.name);
    expect(execIn(hostOf(hostId), ["curl", "-s", "-m", "5", `http://${lab.echo.address}/ip`], { user: "workspace" }).stdout).toBe(lab.wireguard.exit_ip);
    const name = `d${randomLabel()}.${lab.dns.domain}`;
    execIn(hostOf(hostId), ["timeout", "4", "getent", "ahostsv4", name], { user: "workspace" });
    expect(await until(() => canary(lab, name), (s) => s.length > 0, 5000, 100)).toEqual([lab.wireguard.exit_ip]);
    expect(execIn(hostOf(hostId), ["dig", `@${lab.resolver.address}`, "+tries=1", "+time=2", `f${randomLabel()}.${lab.dns.domain}`]).code).not.toBe(0);
    const leak = sentinel(since, gwIp);
    expect(leak.leak, leak.lines).toBe(false);
    // Nothing of it is left on eng1.
    const left = (await new Docker(dockerodeOptions(eng1)).listContainers({ all: true })).flatMap((c) => c.Names.map((n) => n.slice(1)));
    expect(left).not.toContain(hostContainerName(hostId));
    expect(left).not.toContain(gatewayName(hostId));
  }, 1_200_000);
});
