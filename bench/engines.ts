/**
 * Many engines (issue 13, docs/engines.md): per engine, POST create → task `succeeded` and then
 * `ssh … true` through the one SSH proxy, with the local engine (`default`, on this machine's
 * Docker socket) as the same-run baseline for the two lab engines (dockerds in their own network
 * namespaces, reached over TCP with mutual TLS, their management subnets routed:
 * test/lab/engines.sh). Then the time to detect a dead engine (its dockerd stopped → its hosts
 * `unreachable`) against ENGINE_DEAD_AFTER_SECONDS, and the time for them to run again once it is
 * back. Creates are pinned to an engine by a label selector, one at a time, round-robin over the
 * engines, so each engine's figure is measured under the same load. Every home is a plain volume
 * (HOST_DISK_LIMIT_MB=0) so the engines differ only in where they are.
 *
 *   npx tsx bench/engines.ts [rounds per engine, default 10]
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import Docker from "dockerode";
import { secretAt } from "../shared/crypto/secrets.js";
import { engines as enginesTable } from "../shared/db/schema/index.js";
import { dockerodeOptions, startEngines, stopEngines } from "../shared/test/engines.js";
import { benchRow, writeBenchResult } from "./lib/report.js";
import { type BenchStack, baseSshOptions, median, sshEnv, startBenchStack } from "./lib/stack.js";

const run = promisify(execFile);
const ROUNDS = Number(process.argv[2] ?? 10);
const DEAD_AFTER = 10;

async function until(what: string, fn: () => Promise<boolean>, ms = 300_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function taskDone(s: BenchStack, taskId: string): Promise<string> {
  let status = "pending";
  await until(`task ${taskId}`, async () => {
    const [t] = await s.database.sql<{ status: string }[]>`select status from tasks where id = ${taskId}`;
    status = t!.status;
    return ["succeeded", "failed", "canceled"].includes(status);
  });
  return status;
}

async function main() {
  const up = await startEngines(2);
  const lab = up.engines;
  let s: BenchStack | undefined;
  try {
    const common = { ENGINE_DEAD_AFTER_SECONDS: String(DEAD_AFTER), HOST_DISK_LIMIT_MB: "0", HEARTBEAT_INTERVAL_SECONDS: "1" };
    s = await startBenchStack({
      workerEnv: common,
      beforeWorkers: async ({ database, secrets }) => {
        await database.sql`update engines set labels = '{"bench": "default"}'::jsonb where id = 'default'`;
        for (const e of lab) {
          await database.db.insert(enginesTable).values({
            id: e.id,
            endpoint: e.dockerHost,
            tlsCaPem: e.tls.ca,
            tlsCertPem: e.tls.cert,
            tlsKeyEnc: secrets.encrypt(e.tls.key, secretAt.engine(e.id)),
            labels: { bench: e.id },
          });
        }
      },
      extraWorkers: lab.map((e) => ({ ENGINE_ID: e.id, MGMT_NETWORK: e.mgmt.network, MGMT_SUBNET: e.mgmt.subnet, EGRESS_UNDERLAY_NETWORK: "ccp-eng-underlay" })),
    });
    const stack = s;
    const ids = ["default", ...lab.map((e) => e.id)];
    const createMs = new Map<string, number[]>(ids.map((i) => [i, []]));
    const sshMs = new Map<string, number[]>(ids.map((i) => [i, []]));

    const createOn = async (engine: string) => {
      const username = `bench${randomBytes(4).toString("hex")}`;
      const u = await stack.request("POST", "/v1/admin/users", { token: stack.adminToken, body: { username, password: `pw-${randomBytes(8).toString("hex")}` } });
      const t0 = performance.now();
      const res = await stack.request("POST", "/v1/admin/hosts", { token: stack.adminToken, body: { user_id: u.body.user.id, placement: { selector: { bench: engine } } } });
      if (res.status !== 202) throw new Error(`create on ${engine}: ${res.status} ${JSON.stringify(res.body)}`);
      const status = await taskDone(stack, res.body.task_id);
      const ms = performance.now() - t0;
      if (status !== "succeeded") throw new Error(`create on ${engine}: ${status}`);
      return { id: res.body.host.id as string, shortId: res.body.host.short_id as string, ms };
    };
    const sshTrue = async (shortId: string, hostId: string) => {
      const rot = await stack.request("POST", `/v1/admin/hosts/${hostId}/rotate-ssh-password`, { token: stack.adminToken });
      const argv = [
        "-p", String(stack.proxy.port), ...baseSshOptions(stack.proxy.knownHosts),
        "-o", "BatchMode=no", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1",
        `${shortId}@127.0.0.1`, "true",
      ];
      const t0 = performance.now();
      await run("ssh", argv, { env: sshEnv(stack, rot.body.ssh_password) });
      return performance.now() - t0;
    };
    const remove = async (hostId: string) => {
      const del = await stack.request("DELETE", `/v1/admin/hosts/${hostId}`, { token: stack.adminToken });
      await taskDone(stack, del.body.task_id);
    };

    for (let r = 0; r < ROUNDS; r++) {
      for (const engine of ids) {
        const h = await createOn(engine);
        createMs.get(engine)!.push(h.ms);
        sshMs.get(engine)!.push(await sshTrue(h.shortId, h.id));
        await remove(h.id);
      }
      console.log(`round ${r + 1}/${ROUNDS}: ${ids.map((i) => `${i} create ${createMs.get(i)!.at(-1)!.toFixed(0)} ms, ssh ${sshMs.get(i)!.at(-1)!.toFixed(0)} ms`).join("; ")}`);
    }

    // A dead engine: two hosts on eng2, then its dockerd (and its namespace) stopped.
    const onEng2 = [await createOn("eng2"), await createOn("eng2")].map((h) => h.id);
    const statuses = async () => (await stack.database.sql<{ status: string }[]>`select status from hosts where id in ${stack.database.sql(onEng2)}`).map((r) => r.status);
    const stoppedAt = Date.now();
    await stopEngines(["eng2"]);
    await until("eng2's hosts unreachable", async () => (await statuses()).every((x) => x === "unreachable"));
    const detectS = (Date.now() - stoppedAt) / 1000;
    const backAt = Date.now();
    await startEngines(2);
    const upS = (Date.now() - backAt) / 1000;
    await until("eng2's hosts running", async () => (await statuses()).every((x) => x === "running"));
    const recoverS = (Date.now() - backAt) / 1000;
    console.log(`dead engine: hosts unreachable ${detectS.toFixed(1)} s after its stop began (ENGINE_DEAD_AFTER_SECONDS=${DEAD_AFTER}); engine up again in ${upS.toFixed(1)} s, its hosts running ${recoverS.toFixed(1)} s after the start began`);
    for (const id of onEng2) await remove(id);

    // Draining an engine that holds one host with 1 GiB in its home: the host moves (stop, home
    // streamed through the source engine's worker with its length and sha256 checked, switch,
    // start on the target, source removed).
    const big = await createOn("eng1");
    const rot = await stack.request("POST", `/v1/admin/hosts/${big.id}/rotate-ssh-password`, { token: stack.adminToken });
    await run(
      "ssh",
      [
        "-p", String(stack.proxy.port), ...baseSshOptions(stack.proxy.knownHosts),
        "-o", "BatchMode=no", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1",
        `${big.shortId}@127.0.0.1`, "head -c 1073741824 /dev/urandom > ~/blob",
      ],
      { env: sshEnv(stack, rot.body.ssh_password) },
    );
    const drainAt = Date.now();
    const drain = await stack.request("POST", "/v1/admin/engines/eng1/drain", { token: stack.adminToken });
    if (drain.status !== 200) throw new Error(`drain: ${drain.status} ${JSON.stringify(drain.body)}`);
    await until("eng1 drained", async () => {
      const [r] = await stack.database.sql<{ engine_id: string; status: string }[]>`select engine_id, status from hosts where id = ${big.id}`;
      const [t] = await stack.database.sql<{ status: string }[]>`select status from tasks where host_id = ${big.id} and kind = 'host.move' order by created_at desc limit 1`;
      if (t?.status === "failed") {
        const [f] = await stack.database.sql`select error_code, error_message, steps from tasks where host_id = ${big.id} and kind = 'host.move' order by created_at desc limit 1`;
        throw new Error(`the move failed: ${JSON.stringify(f)}`);
      }
      return r!.engine_id !== "eng1" && r!.status === "running" && t?.status === "succeeded";
    }, 900_000);
    const drainS = (Date.now() - drainAt) / 1000;
    const [moveTask] = await stack.database.sql<{ steps: { name: string; duration_ms: number | null }[] }[]>`
      select steps from tasks where host_id = ${big.id} and kind = 'host.move' order by created_at desc limit 1`;
    const steps = moveTask!.steps.map((x) => `${x.name} ${((x.duration_ms ?? 0) / 1000).toFixed(1)} s`).join(", ");
    console.log(`drain: one host with 1 GiB in its home moved off eng1 in ${drainS.toFixed(1)} s (${steps})`);
    await remove(big.id);

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
    rows.push({
      ...benchRow({ path: "drain an engine: one host with 1 GiB in its home moved", unit: "s", baseline: null, ours: drainS }),
      note: steps,
    });
    writeBenchResult("engines", rows);
  } finally {
    for (const e of lab) {
      const d = new Docker(dockerodeOptions(e));
      for (const c of await d.listContainers({ all: true, filters: { label: [`cloud-cli-proxy.instance=${s?.prefix}`] } }).catch(() => [])) {
        await d.getContainer(c.Id).remove({ force: true }).catch(() => {});
      }
    }
    await s?.close();
    await stopEngines(up.started);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
