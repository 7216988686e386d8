/**
 * Many engines (issue 13, docs/engines.md): per engine, POST create → task `succeeded` and then
 * `ssh … true` through the one SSH proxy, with the local engine (`default`, on this machine's
 * Docker socket) as the same-run baseline for the two lab engines (dockerds in their own network
 * namespaces, reached over TCP with mutual TLS, their management subnets routed:
 * test/lab/engines.sh). Then the time to detect a dead engine (its dockerd stopped → its hosts
 * `unreachable`) against ENGINE_DEAD_AFTER_SECONDS, and the time for them to run again once it is
 * back. Creates are pinned to an engine by a label selector, one at a time, round-robin over the
 * engines, so each engine's figure is measured under the same load.
 *
 *   npx tsx bench/engines.ts [rounds per engine, default 10]
 */
import Docker from "dockerode";
import { engines as enginesTable } from "../shared/db/schema/index.js";
import { secretAt } from "../shared/crypto/secrets.js";
import { createApiHarness } from "../shared/test/api-harness.js";
import { dockerodeOptions, startEngines, stopEngines, type TestEngine } from "../shared/test/engines.js";
import { ssh, startTestSshd } from "../shared/test/sshd-harness.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../shared/test/worker-harness.js";
import { benchRow, writeBenchResult } from "./lib/report.js";
import { median } from "./lib/stack.js";

const ROUNDS = Number(process.argv[2] ?? 10);
const DEAD_AFTER = 10;

async function until(what: string, fn: () => Promise<boolean>, ms = 300_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main() {
  const up = await startEngines(2);
  const lab: TestEngine[] = up.engines;
  const h = await createApiHarness({ ENGINE_DEAD_AFTER_SECONDS: String(DEAD_AFTER) });
  const workers: WorkerHarness[] = [];
  try {
    const admin = await h.adminToken();
    await h.database.sql`update engines set labels = '{"bench": "default"}'::jsonb where id = 'default'`;
    for (const e of lab) {
      await h.database.db.insert(enginesTable).values({
        id: e.id,
        endpoint: e.dockerHost,
        tlsCaPem: e.tls.ca,
        tlsCertPem: e.tls.cert,
        tlsKeyEnc: h.deps.secrets.encrypt(e.tls.key, secretAt.engine(e.id)),
        labels: { bench: e.id },
      });
    }
    const s = await startTestSshd(h);
    // The same home kind everywhere (plain volumes), so the engines differ only in where they are.
    const common = { ENGINE_DEAD_AFTER_SECONDS: String(DEAD_AFTER), HOST_DISK_LIMIT_MB: "0" };
    workers.push(await startTestWorker(h, common));
    for (const e of lab) {
      workers.push(
        await startTestWorker(h, { ...common, ENGINE_ID: e.id, MGMT_NETWORK: e.mgmt.network, MGMT_SUBNET: e.mgmt.subnet, EGRESS_UNDERLAY_NETWORK: "ccp-eng-underlay" }),
      );
    }
    const ids = ["default", ...lab.map((e) => e.id)];
    const createMs = new Map<string, number[]>(ids.map((i) => [i, []]));
    const sshMs = new Map<string, number[]>(ids.map((i) => [i, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const engine of ids) {
        const u = await h.createUser();
        const t0 = performance.now();
        const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id, placement: { selector: { bench: engine } } } });
        if (res.status !== 202) throw new Error(`create on ${engine}: ${res.status} ${res.text}`);
        const t = await waitForTask(h, res.body.task_id, 300_000);
        const created = performance.now() - t0;
        if (t.status !== "succeeded") throw new Error(`create on ${engine}: ${JSON.stringify(t)}`);
        const rot = await h.request("POST", `/v1/admin/hosts/${res.body.host.id}/rotate-ssh-password`, { token: admin });
        const o = { login: res.body.host.short_id as string, password: rot.body.ssh_password as string, args: ["true"] };
        const t1 = performance.now();
        const out = await ssh(s, o);
        const sshed = performance.now() - t1;
        if (out.code !== 0) throw new Error(`ssh to a host on ${engine} exited ${out.code}: ${out.stderr}`);
        createMs.get(engine)!.push(created);
        sshMs.get(engine)!.push(sshed);
        const del = await h.request("DELETE", `/v1/admin/hosts/${res.body.host.id}`, { token: admin });
        await waitForTask(h, del.body.task_id, 300_000);
      }
      console.log(`round ${r + 1}/${ROUNDS}: ${ids.map((i) => `${i} create ${createMs.get(i)!.at(-1)!.toFixed(0)} ms, ssh ${sshMs.get(i)!.at(-1)!.toFixed(0)} ms`).join("; ")}`);
    }

    // A dead engine: two hosts on eng2, its dockerd stopped.
    const onEng2: string[] = [];
    for (let i = 0; i < 2; i++) {
      const u = await h.createUser();
      const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id, placement: { selector: { bench: "eng2" } } } });
      await waitForTask(h, res.body.task_id, 300_000);
      onEng2.push(res.body.host.id);
    }
    const statuses = async () => (await h.database.sql<{ status: string }[]>`select status from hosts where id in ${h.database.sql(onEng2)}`).map((r) => r.status);
    const stoppedAt = Date.now();
    await stopEngines(["eng2"]);
    const stopS = (Date.now() - stoppedAt) / 1000;
    await until("eng2's hosts unreachable", async () => (await statuses()).every((x) => x === "unreachable"));
    const detectS = (Date.now() - stoppedAt) / 1000;
    const backAt = Date.now();
    await startEngines(2);
    const upS = (Date.now() - backAt) / 1000;
    await until("eng2's hosts running", async () => (await statuses()).every((x) => x === "running"));
    const recoverS = (Date.now() - backAt) / 1000;
    console.log(`dead engine: stop took ${stopS.toFixed(1)} s; hosts unreachable ${detectS.toFixed(1)} s after the stop began (ENGINE_DEAD_AFTER_SECONDS=${DEAD_AFTER}); engine up again in ${upS.toFixed(1)} s, hosts running ${recoverS.toFixed(1)} s after the start began`);
    for (const id of onEng2) {
      const del = await h.request("DELETE", `/v1/admin/hosts/${id}`, { token: admin });
      await waitForTask(h, del.body.task_id, 300_000);
    }

    const rows = [];
    const base = { create: median(createMs.get("default")!), ssh: median(sshMs.get("default")!) };
    console.log(`\nper engine (medians of ${ROUNDS}):`);
    for (const engine of ids) {
      const c = median(createMs.get(engine)!);
      const x = median(sshMs.get(engine)!);
      console.log(`  ${engine.padEnd(8)} create → succeeded ${c.toFixed(0)} ms, ssh true ${x.toFixed(0)} ms`);
      if (engine === "default") continue;
      rows.push(benchRow({ path: `create → succeeded p50, engine ${engine} (TCP+mTLS, routed)`, unit: "ms", baseline: base.create, baselineLabel: "the local engine", ours: c }));
      rows.push(benchRow({ path: `ssh … true through the proxy p50, host on ${engine}`, unit: "ms", baseline: base.ssh, baselineLabel: "host on the local engine", ours: x }));
    }
    rows.push({
      ...benchRow({ path: "dead engine → its hosts unreachable", unit: "s", baseline: DEAD_AFTER, baselineLabel: "ENGINE_DEAD_AFTER_SECONDS", ours: detectS }),
      note: `back: hosts running ${recoverS.toFixed(1)} s after the engine's start began`,
    });
    writeBenchResult("engines", rows);
    await s.stop();
  } finally {
    for (const w of workers) await w.stop().catch(() => {});
    for (const e of lab) {
      const d = new Docker(dockerodeOptions(e));
      for (const c of await d.listContainers({ all: true, filters: { label: [`cloud-cli-proxy.instance=${h.prefix}`] } }).catch(() => [])) {
        await d.getContainer(c.Id).remove({ force: true }).catch(() => {});
      }
    }
    removeInstanceObjects(h.prefix);
    await stopEngines(up.started);
    await h.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
