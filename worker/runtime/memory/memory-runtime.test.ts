import { describe, expect, it } from "vitest";
import type { WorkerDeps } from "../../deps.js";
import { DISK_AGENT_NAME, runDiskOp } from "../../hosts/disk.js";
import { activeUpload, applyGatewayFiles, applyGatewayLive, gatewayHasFiles, readGatewayStatus, reloadGateway, waitGatewayReady } from "../../network/gateway.js";
import { renderGatewayFiles } from "../../network/gateway-files.js";
import { ContainerOperationError, EngineUnavailableError, type GatewaySpec, type HostSpec } from "../runtime.js";
import { MemoryRuntime, engineDown } from "./memory-runtime.js";

/** The in-memory engine keeps the Runtime's contract (worker/runtime/runtime.ts). */

const IMG = "img:latest";
const direct = (dns: string) =>
  renderGatewayFiles({ mode: "direct", mgmt: { src: "10.0.0.1", net: "10.0.0.0/24" }, underlayGateway: "10.1.0.1", dns }, 7);

function gatewaySpec(name = "gw"): GatewaySpec {
  return { name, image: IMG, hostname: "h", labels: { "cloud-cli-proxy.managed": "true" }, networks: ["under", "mgmt"], files: [activeUpload(direct("10.9.9.9"))] };
}
function hostSpec(name = "host", gatewayName = "gw"): HostSpec {
  return {
    name,
    image: IMG,
    gatewayName,
    labels: { "cloud-cli-proxy.managed": "true" },
    env: [],
    memoryMb: 64,
    cpus: 1,
    pids: 64,
    volume: { name: "home", target: "/home/workspace" },
    tmpfsMb: 16,
    files: [{ dir: "/", files: [{ name: "etc/motd", content: "hi", mode: 0o644 }] }],
  };
}

async function engineWithHost() {
  const rt = new MemoryRuntime({ images: [IMG] });
  await rt.ensureNetwork("mgmt", { subnet: "172.30.0.0/16" });
  await rt.ensureNetwork("under", {});
  await rt.ensureVolume("home", { "cloud-cli-proxy.managed": "true" });
  await rt.createGateway(gatewaySpec());
  await rt.startContainer("gw");
  await rt.createHost(hostSpec());
  await rt.startContainer("host");
  return rt;
}

describe("MemoryRuntime", () => {
  it("is idempotent like the engine: absent objects are null or no-ops, creates keep what exists", async () => {
    const rt = new MemoryRuntime({ images: [IMG] });
    expect(await rt.inspectContainer("nope")).toBeNull();
    expect(await rt.inspectVolume("nope")).toBeNull();
    await rt.stopContainer("nope", 1);
    await rt.removeContainer("nope");
    await rt.removeVolume("nope");
    const a = await rt.ensureNetwork("mgmt", { subnet: "172.30.0.0/16" });
    expect(a).toEqual({ name: "mgmt", subnet: "172.30.0.0/16", gateway: "172.30.0.1" });
    expect(await rt.ensureNetwork("mgmt", {})).toEqual(a);
    await rt.ensureNetwork("under", {});
    await rt.createGateway(gatewaySpec());
    const first = await rt.inspectContainer("gw");
    await rt.createGateway(gatewaySpec());
    expect((await rt.inspectContainer("gw"))!.id).toBe(first!.id);
    expect(first!.networks).toEqual({ under: expect.stringMatching(/^10\./), mgmt: "172.30.0.2" });
    expect(first!.imageId).toMatch(/^sha256:/);
  });

  it("starts a host only in a running gateway's namespace, and its home is the volume", async () => {
    const rt = new MemoryRuntime({ images: [IMG] });
    await rt.ensureNetwork("mgmt", {});
    await rt.ensureNetwork("under", {});
    await rt.createGateway(gatewaySpec());
    await rt.ensureVolume("home", {});
    await rt.createHost(hostSpec());
    await expect(rt.startContainer("host")).rejects.toBeInstanceOf(ContainerOperationError);
    await rt.startContainer("gw");
    await rt.startContainer("host");
    const s = await rt.inspectContainer("host");
    expect(s!.running).toBe(true);
    expect(s!.startedAt!.getTime()).toBeGreaterThan((await rt.inspectContainer("gw"))!.startedAt!.getTime());
    await rt.putFiles("host", "/home/workspace", [{ name: "a.txt", content: "x", mode: 0o644 }]);
    expect(rt.volumes.get("home")!.files.get("a.txt")!.content.toString()).toBe("x");
    expect((await rt.readFile("host", "/etc/motd"))!.toString()).toBe("hi");
    await expect(rt.removeVolume("home")).rejects.toBeInstanceOf(ContainerOperationError);
    await rt.removeContainer("host");
    await rt.removeVolume("home");
    expect(await rt.inspectVolume("home")).toBeNull();
  });

  it("refuses a create from a missing image", async () => {
    const rt = new MemoryRuntime();
    await rt.ensureNetwork("mgmt", {});
    await rt.ensureNetwork("under", {});
    expect(await rt.imageExists(IMG)).toBe(false);
    await expect(rt.createGateway(gatewaySpec())).rejects.toBeInstanceOf(ContainerOperationError);
  });

  it("injects failures: the next call only, per target, and an engine that is down", async () => {
    const rt = await engineWithHost();
    rt.failNext("stopContainer", { target: "host" });
    await rt.stopContainer("gw", 1);
    await expect(rt.stopContainer("host", 1)).rejects.toBeInstanceOf(ContainerOperationError);
    await rt.stopContainer("host", 1);
    rt.failNext("inspectContainer", { error: engineDown, times: 2 });
    await expect(rt.inspectContainer("gw")).rejects.toBeInstanceOf(EngineUnavailableError);
    await expect(rt.inspectContainer("gw")).rejects.toBeInstanceOf(EngineUnavailableError);
    expect(await rt.inspectContainer("gw")).not.toBeNull();
    rt.setEngineDown(true);
    expect(await rt.ping()).toBe(false);
    await expect(rt.listManagedContainers()).rejects.toBeInstanceOf(EngineUnavailableError);
    rt.setEngineDown(false);
    expect((await rt.listManagedContainers()).map((c) => c.name).sort()).toEqual(["gw", "host"]);
  });

  it("holds a call at its start until released", async () => {
    const rt = await engineWithHost();
    const held = rt.hold("stopContainer", "host");
    let done = false;
    const p = rt.stopContainer("host", 1).then(() => (done = true));
    await held.reached;
    expect(done).toBe(false);
    expect(rt.containers.get("host")!.running).toBe(true);
    held.release();
    await p;
    expect(rt.containers.get("host")!.running).toBe(false);
  });

  it("answers the gateway's status, live apply and file digests as the real gateway image does", async () => {
    const rt = await engineWithHost();
    const deps = { runtime: rt, config: { GATEWAY_READY_TIMEOUT_SECONDS: 2 } } as unknown as WorkerDeps;
    expect(await waitGatewayReady(deps, "gw", { generation: 7 })).toMatchObject({ status: "ready", generation: 7, mode: "direct" });
    expect(await gatewayHasFiles(deps, "gw", direct("10.9.9.9"))).toBe(true);
    expect(await gatewayHasFiles(deps, "gw", direct("10.8.8.8"))).toBe(false);
    const next = renderGatewayFiles({ mode: "direct", mgmt: { src: "10.0.0.1", net: "10.0.0.0/24" }, underlayGateway: "10.1.0.1", dns: "10.8.8.8" }, 9);
    await applyGatewayFiles(deps, "gw", next);
    expect(await reloadGateway(deps, "gw", 9)).toMatchObject({ status: "ready", generation: 9 });
    expect(await gatewayHasFiles(deps, "gw", next)).toBe(true);
    expect(rt.fileOf("gw", "/etc/ccp/next/mode")).toBeNull();
    rt.containers.get("gw")!.gatewayStatus = "failed";
    await expect(waitGatewayReady(deps, "gw")).rejects.toMatchObject({ code: "tunnel_setup_failed" });
    // A stopped gateway answers no exec.
    await rt.stopContainer("gw", 1);
    expect(await readGatewayStatus(deps, "gw")).toBeNull();
  });

  it("applies live in one exec (apply-dir), and takes the two-exec path on an image without it", async () => {
    const rt = await engineWithHost();
    const deps = { runtime: rt, config: { GATEWAY_READY_TIMEOUT_SECONDS: 2 } } as unknown as WorkerDeps;
    const seen: string[] = [];
    rt.onExec(({ argv }) => {
      seen.push(argv.slice(0, 2).join(" "));
      return undefined;
    });
    const files = (g: number, dns: string) =>
      renderGatewayFiles({ mode: "direct", mgmt: { src: "10.0.0.1", net: "10.0.0.0/24" }, underlayGateway: "10.1.0.1", dns }, g);
    expect(await applyGatewayLive(deps, "gw", files(11, "10.7.7.7"), 11)).toMatchObject({ status: "ready", generation: 11 });
    expect(seen).toEqual(["ccp-gateway apply-dir"]);
    expect(await gatewayHasFiles(deps, "gw", files(11, "10.7.7.7"))).toBe(true);
    expect(rt.fileOf("gw", "/etc/ccp/next.11/mode")).toBeNull();

    // An older gateway image: its usage line does not know apply-dir (exit 2).
    let refused = 0;
    rt.onExec(({ argv }) => {
      if (argv[1] !== "apply-dir") return undefined;
      refused++;
      return { exitCode: 2, stdout: "", stderr: "usage: ccp-gateway [run|status|apply|wait]\n" };
    });
    seen.length = 0;
    expect(await applyGatewayLive(deps, "gw", files(12, "10.6.6.6"), 12)).toMatchObject({ status: "ready", generation: 12 });
    expect(refused).toBe(1);
    expect(seen).toEqual(["rm -rf", "ccp-gateway apply"]);
    expect(await gatewayHasFiles(deps, "gw", files(12, "10.6.6.6"))).toBe(true);
    expect(rt.fileOf("gw", "/etc/ccp/next.12/mode")).toBeNull();
  });

  it("runs the disk agent's operations, and a bind home cannot start without its mounted disk", async () => {
    const rt = new MemoryRuntime({ images: [IMG] });
    const deps = { runtime: rt, config: { GATEWAY_IMAGE: IMG } } as unknown as WorkerDeps;
    const id = "0b3c2a5e-1f0d-4c1e-9a57-6d2f3e4b5a69";
    await expect(runDiskOp(deps, "mount", "/srv/ccp", id)).rejects.toMatchObject({ code: "disk_setup_failed" });
    await runDiskOp(deps, "ensure", "/srv/ccp", id, 512);
    expect(rt.containers.get(DISK_AGENT_NAME)!.running).toBe(true);
    expect(rt.disks.get(`/srv/ccp/${id}`)).toEqual({ mounted: true, sizeMb: 512 });
    await rt.ensureNetwork("mgmt", {});
    await rt.ensureNetwork("under", {});
    await rt.ensureVolume("home", {}, { bindDevice: `/srv/ccp/${id}/home` });
    await rt.createGateway(gatewaySpec());
    await rt.startContainer("gw");
    await rt.createHost(hostSpec());
    rt.disks.get(`/srv/ccp/${id}`)!.mounted = false; // the machine rebooted
    await expect(rt.startContainer("host")).rejects.toBeInstanceOf(ContainerOperationError);
    await runDiskOp(deps, "mount", "/srv/ccp", id);
    await rt.startContainer("host");
    await rt.removeContainer("host");
    await runDiskOp(deps, "remove", "/srv/ccp", id);
    expect(rt.disks.size).toBe(0);
  });

  it("writes and reads authorized_keys through the host's fixed scripts, as the host user", async () => {
    const rt = await engineWithHost();
    const read = await rt.exec("host", ["sh", "-c", 'exec dd if="$f"', "sh", "/home/workspace"]);
    expect(read.exitCode).toBe(2);
    await rt.exec("host", ["sh", "-c", 'cat > "$1/.ssh/.authorized_keys.ccp-tmp"', "sh", "/home/workspace"], { stdin: "ssh-ed25519 AAAA x\n" });
    expect(rt.volumes.get("home")!.files.get(".ssh/authorized_keys")!.content.toString()).toBe("ssh-ed25519 AAAA x\n");
    const unknown = await rt.exec("host", ["whoami"]);
    expect(unknown.exitCode).toBe(127);
  });
});
