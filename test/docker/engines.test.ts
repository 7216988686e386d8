import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { dockerodeOptions, registerTestEngine, removeInstanceFromEngine, startEngines, stopEngines, type TestEngine } from "../../shared/test/engines.js";
import { type SshdHarness, ssh, startTestSshd } from "../../shared/test/sshd-harness.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { gatewayName, hostContainerName } from "../../worker/hosts/names.js";
import { waitUntil } from "../../shared/test/processes.js";

/**
 * Three real Docker engines behind one control plane (issue 13, docs/engines.md): the main engine
 * (`default`) and two dockerds in their own network namespaces on this machine, reached over TCP
 * with mutual TLS, their management subnets routed from here (test/lab/engines.sh). One API, one
 * SSH proxy, a worker per engine. Proves: a new engine gets the gateway image from another engine
 * (checked by image id), creates spread across the three, SSH through the one proxy reaches hosts
 * on every engine, and an engine that stops answering turns only its hosts `unreachable` and brings
 * them back unaided when it returns.
 */
let h: ApiHarness;
let s: SshdHarness;
let api: Awaited<ReturnType<ApiHarness["listen"]>>;
let admin: string;
let lab: TestEngine[] = [];
let startedHere: string[] = [];
const workers: WorkerHarness[] = [];
const DEAD_AFTER = "10";

const GATEWAY_IMAGE = "cloud-cli-proxy/gateway:latest";

function engineWorkerEnv(e: TestEngine): Record<string, string> {
  return {
    ENGINE_ID: e.id,
    MGMT_NETWORK: e.mgmt.network,
    MGMT_SUBNET: e.mgmt.subnet,
    EGRESS_UNDERLAY_NETWORK: "ccp-eng-underlay",
    // Plain volumes on the lab engines: their machine is this one, the home-image agent is the main engine's.
    HOST_DISK_LIMIT_MB: "0",
    ENGINE_DEAD_AFTER_SECONDS: DEAD_AFTER,
  };
}

/** The project's poll-with-deadline (shared/test/processes.ts) for probes that answer false or null while not yet. */
const until = <T>(what: string, fn: () => Promise<T | undefined | null | false>, ms = 120_000): Promise<T> =>
  waitUntil(what, ms, async () => (await fn()) || undefined);

const rowsOf = async (ids: string[]) =>
  h.database.sql<{ id: string; short_id: string; engine_id: string; status: string }[]>`
    select id, short_id, engine_id, status from hosts where id in ${h.database.sql(ids)}`;

beforeAll(async () => {
  const up = await startEngines(2);
  lab = up.engines;
  startedHere = up.started;
  // eng1 starts without the gateway image: its worker must fetch it from an engine that has it.
  const eng1 = new Docker(dockerodeOptions(lab[0]!));
  await eng1
    .getImage(GATEWAY_IMAGE)
    .remove({ force: true })
    .catch((err: { statusCode?: number }) => {
      if (err.statusCode !== 404) throw err;
    });

  h = await createApiHarness({ ENGINE_DEAD_AFTER_SECONDS: DEAD_AFTER });
  admin = await h.adminToken();
  for (const e of lab) await registerTestEngine(h, e);
  s = await startTestSshd(h);
  api = await h.listen();
  workers.push(await startTestWorker(h, { ENGINE_DEAD_AFTER_SECONDS: DEAD_AFTER }));
  workers.push(await startTestWorker(h, engineWorkerEnv(lab[1]!)));
  // The others have published their images before eng1's worker looks for a source.
  await until("two engines' images published", async () => {
    const [r] = await h.database.sql<{ n: number }[]>`select count(*)::int as n from engine_images`;
    return r!.n >= 2;
  });
  workers.push(await startTestWorker(h, engineWorkerEnv(lab[0]!)));
}, 900_000);

afterAll(async () => {
  for (const w of workers.splice(0)) await w.stop().catch(() => {});
  await s?.stop();
  await api?.close();
  // Anything a failed test left on the lab engines, by this run's instance label.
  if (h) for (const e of lab) await removeInstanceFromEngine(e, h.prefix);
  if (h) removeInstanceObjects(h.prefix);
  await stopEngines(startedHere);
  await h?.close();
}, 300_000);

describe("three engines behind one control plane", () => {
  const hostIds: string[] = [];
  const passwords = new Map<string, string>();

  it("a new engine gets the gateway image from another engine, checked by its id", async () => {
    const want = docker(["image", "inspect", "-f", "{{.Id}}", GATEWAY_IMAGE]).trim();
    const got = (await new Docker(dockerodeOptions(lab[0]!)).getImage(GATEWAY_IMAGE).inspect()).Id;
    expect(got).toBe(want);
    const [ev] = await h.database.sql<{ metadata: Record<string, unknown> }[]>`
      select metadata from events where type = 'engine.image.imported' and metadata->>'engine_id' = 'eng1'`;
    expect(ev?.metadata).toMatchObject({ ref: GATEWAY_IMAGE, image_id: want });
    expect(["default", "eng2"]).toContain(ev!.metadata.from_engine_id);
  });

  it("six creates at once spread two per engine; SSH through the one proxy and the desktop through the one API reach a host on every engine", async () => {
    const users = await Promise.all(Array.from({ length: 6 }, () => h.createUser()));
    const created = await Promise.all(users.map((u) => h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } })));
    for (const c of created) expect(c.status, c.text).toBe(202);
    for (const c of created) {
      const t = await waitForTask(h, c.body.task_id, 300_000);
      expect(t.status, JSON.stringify(t)).toBe("succeeded");
      hostIds.push(c.body.host.id);
    }
    const rows = await rowsOf(hostIds);
    const per = Object.fromEntries(["default", "eng1", "eng2"].map((e) => [e, rows.filter((r) => r.engine_id === e).length]));
    expect(per).toEqual({ default: 2, eng1: 2, eng2: 2 });

    for (const r of rows) {
      // The containers are on the host's engine and nowhere else.
      for (const e of lab) {
        const names = (await new Docker(dockerodeOptions(e)).listContainers({ all: true })).flatMap((c) => c.Names.map((n) => n.slice(1)));
        expect(names.includes(hostContainerName(r.id)), `${r.id} on ${e.id}`).toBe(r.engine_id === e.id);
        expect(names.includes(gatewayName(r.id))).toBe(r.engine_id === e.id);
      }
      const rot = await h.request("POST", `/v1/admin/hosts/${r.id}/rotate-ssh-password`, { token: admin });
      expect(rot.status, rot.text).toBe(200);
      passwords.set(r.id, rot.body.ssh_password);
      const out = await ssh(s, { login: r.short_id, password: rot.body.ssh_password, args: ["id -un"] });
      expect(out.stdout.trim(), `${r.engine_id}: ${out.stderr}`).toBe("workspace");
      // The desktop (noVNC on the host's :6901) through the API's proxy; it starts after sshd.
      const page = await until(`the desktop of a host on ${r.engine_id}`, async () => {
        const res = await fetch(`${api.url}/v1/admin/hosts/${r.id}/vnc/vnc.html`, { headers: { authorization: `Bearer ${admin}` } });
        const text = await res.text();
        return res.status === 200 ? text : null;
      });
      expect(page).toContain("noVNC");
    }
  }, 900_000);

  it("an engine that stops answering turns only its hosts unreachable; back, they run again unaided", async () => {
    const rows = await rowsOf(hostIds);
    const onEng2 = rows.filter((r) => r.engine_id === "eng2");
    const onEng1 = rows.find((r) => r.engine_id === "eng1")!;
    expect(onEng2).toHaveLength(2);

    const stoppedAt = Date.now();
    await stopEngines(["eng2"]);
    await until("eng2's hosts unreachable", async () => (await rowsOf(onEng2.map((r) => r.id))).every((r) => r.status === "unreachable"));
    const detectS = (Date.now() - stoppedAt) / 1000;
    console.log(`engines: eng2 stopped → its hosts unreachable in ${detectS.toFixed(1)} s (ENGINE_DEAD_AFTER_SECONDS=${DEAD_AFTER})`);

    // Everything else carries on: the other engines' hosts, SSH to them, the API.
    const others = (await rowsOf(hostIds)).filter((r) => r.engine_id !== "eng2");
    expect(others.every((r) => r.status === "running")).toBe(true);
    const out = await ssh(s, { login: onEng1.short_id, password: passwords.get(onEng1.id)!, args: ["true"] });
    expect(out.code, out.stderr).toBe(0);
    const list = await h.request("GET", "/v1/admin/hosts", { token: admin });
    expect(list.status).toBe(200);
    // A create meanwhile lands on a live engine.
    const u = await h.createUser();
    const extra = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
    expect(extra.status, extra.text).toBe(202);
    hostIds.push(extra.body.host.id);
    expect((await rowsOf([extra.body.host.id]))[0]!.engine_id).not.toBe("eng2");

    const restartedAt = Date.now();
    await startEngines(2);
    await until(
      "eng2's hosts running again",
      async () => (await rowsOf(onEng2.map((r) => r.id))).every((r) => r.status === "running"),
      240_000,
    );
    console.log(`engines: eng2 back → its hosts running in ${((Date.now() - restartedAt) / 1000).toFixed(1)} s`);
    const [ev] = await h.database.sql<{ n: number }[]>`
      select count(*)::int as n from events where type = 'host.reachable' and host_id in ${h.database.sql(onEng2.map((r) => r.id))}`;
    expect(ev!.n).toBe(2);
    const back = await ssh(s, { login: onEng2[0]!.short_id, password: passwords.get(onEng2[0]!.id)!, args: ["id -un"] });
    expect(back.stdout.trim(), back.stderr).toBe("workspace");
  }, 600_000);

  it("a host moved to another engine keeps its home, short id, keys and password; SSH reaches it there", async () => {
    const [r] = (await rowsOf(hostIds)).filter((x) => x.engine_id === "eng1" && x.status === "running");
    expect(r, "a running host on eng1").toBeDefined();
    const password = passwords.get(r!.id)!;
    // 64 MiB of random data and a small file, with their checksum, in the home.
    const write = await ssh(s, {
      login: r!.short_id,
      password,
      args: ["head -c 67108864 /dev/urandom > ~/blob && echo kept > ~/note && sha256sum ~/blob | cut -d' ' -f1"],
    });
    expect(write.code, write.stderr).toBe(0);
    const sum = write.stdout.trim();
    const [before] = await h.database.sql<{ host_key_public: string; short_id: string }[]>`select host_key_public, short_id from hosts where id = ${r!.id}`;

    const t0 = Date.now();
    const move = await h.request("POST", `/v1/admin/hosts/${r!.id}/move`, { token: admin, body: { engine_id: "eng2" } });
    expect(move.status, move.text).toBe(202);
    const t = await waitForTask(h, move.body.task_id, 600_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    console.log(`engines: moved a host with 64 MiB in its home from eng1 to eng2 in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const [after] = await h.database.sql<{ engine_id: string; status: string; host_key_public: string; short_id: string }[]>`
      select engine_id, status, host_key_public, short_id from hosts where id = ${r!.id}`;
    expect(after).toMatchObject({ engine_id: "eng2", status: "running", host_key_public: before!.host_key_public, short_id: before!.short_id });
    // The same password and the pinned host key (the proxy refuses any other) reach it on eng2, home intact.
    const read = await ssh(s, { login: r!.short_id, password, args: ["cat ~/note && sha256sum ~/blob | cut -d' ' -f1"] });
    expect(read.stdout.trim().split("\n"), read.stderr).toEqual(["kept", sum]);
    // Nothing of it is left on eng1; its containers are on eng2.
    const names = async (e: TestEngine) => (await new Docker(dockerodeOptions(e)).listContainers({ all: true })).flatMap((c) => c.Names.map((n) => n.slice(1)));
    expect(await names(lab[0]!)).not.toContain(hostContainerName(r!.id));
    expect(await names(lab[0]!)).not.toContain(gatewayName(r!.id));
    expect(await names(lab[1]!)).toContain(hostContainerName(r!.id));
  }, 900_000);

  it("deleting every host leaves nothing on any engine", async () => {
    for (const id of hostIds) {
      const del = await h.request("DELETE", `/v1/admin/hosts/${id}`, { token: admin });
      expect(del.status, del.text).toBe(202);
      expect((await waitForTask(h, del.body.task_id, 300_000)).status).toBe("succeeded");
    }
    for (const e of lab) {
      const d = new Docker(dockerodeOptions(e));
      const left = await d.listContainers({ all: true, filters: { label: [`cloud-cli-proxy.instance=${h.prefix}`] } });
      expect(left.filter((c) => !c.Names.some((n) => n.includes("disk-agent"))).map((c) => c.Names[0]), e.id).toEqual([]);
    }
  }, 600_000);
});
