/**
 * Host creation with the egress checks configured, and egress tests, against the test lab
 * (issue 12 targets; docs/architecture.md#warm-pool, docs/egress.md#verification):
 *
 *   npx tsx bench/egress-create.ts [N=20]
 *
 * A stack of its own (bench/lib/stack.ts: in-process API and worker with the lab's settings and
 * HOST_POOL_SIZE=1, the SSH proxy in its own process; own database, Redis prefix and Docker
 * objects, all removed). Every packet stays on the lab's networks (test/lab, 203.0.113.0/24).
 * Each round, in this order, with the owner and their key made and the pool refilled beforehand
 * (not timed):
 *  - warm, no egress: `POST /v1/admin/hosts` → task `succeeded` (read from Postgres every 2 ms);
 *  - warm, bound to the lab's WireGuard egress at create (`egress_ip_id`): POST → task
 *    `succeeded`, and POST → `ssh -p <proxy> <short id>@127.0.0.1 true` (OpenSSH, the owner's key)
 *    exited 0, started the moment the task succeeded;
 *  - the same with the lab's shadowsocks egress;
 *  - cold, no egress: a create no pool member matches (another timezone) → task `succeeded`;
 *  - the floor (bench/lib/floor.ts): Docker alone making and starting the two containers until
 *    sshd's banner, the same-run baseline of the cold create;
 *  - an egress test of each egress (unbound by then: the worker's spare gateway, made after the
 *    previous test and waited for, as the pool is), the synchronous
 *    `POST /v1/admin/egress-ips/{id}/test` → its 200 answer with every check passed.
 * The created hosts are deleted after each round (their deletes are not timed). Baseline of the
 * ssh figures, same run, interleaved: `ssh … true` through the proxy to a host that already runs.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseWorkerConfig } from "../shared/config/worker.js";
import { createDockerRuntime } from "../worker/runtime/docker/docker-runtime.js";
import { hostContainerName } from "../worker/hosts/names.js";
import { removeInstanceObjects } from "../shared/test/worker-harness.js";
import { createFloor } from "./lib/floor.js";
import { benchQuick, benchRow, runBench, writeBenchResult } from "./lib/report.js";
import { type BenchStack, percentile, proxyArgv, sshEnv, startBenchStack, waitPoolReady, waitTaskRow } from "./lib/stack.js";

const N = Math.max(1, Number(process.argv[2] ?? (benchQuick() ? 3 : 20)) || 20);
const LAB_STATE = process.env.CCP_LAB_STATE ?? "/tmp/ccp-lab";

interface Lab {
  env: Record<string, string>;
  echo: { address: string };
  wireguard: { exit_ip: string; egress: Record<string, unknown> };
  proxies: { shadowsocks: { exit_ip: string; egress: Record<string, unknown> } };
}

type Kind = "wireguard" | "shadowsocks";
const KINDS: Kind[] = ["wireguard", "shadowsocks"];

function run(cmd: string, argv: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    c.stdout.on("data", (d) => (stdout += String(d)));
    c.stderr.resume();
    c.on("close", (code) => resolve({ code, stdout: stdout.trim() }));
  });
}


async function stepsOf(s: BenchStack, taskId: string): Promise<string> {
  const [t] = await s.database.sql<{ pickup: number; steps: { name: string; duration_ms?: number }[] }[]>`
    select (extract(epoch from started_at - created_at) * 1000)::int as pickup, steps from tasks where id = ${taskId}`;
  return `queued ${t!.pickup}; ${t!.steps.filter((x) => x.duration_ms).map((x) => `${x.name} ${x.duration_ms}`).join(", ")}`;
}

async function main() {
  execFileSync("bash", ["test/lab/up.sh"], { stdio: ["ignore", "ignore", "inherit"], timeout: 300_000 });
  const lab = JSON.parse(readFileSync(`${LAB_STATE}/lab.json`, "utf8")) as Lab;
  const s = await startBenchStack({ workerEnv: { ...lab.env, HOST_POOL_SIZE: "1", EGRESS_TEST_SPARE: "true", WORKER_CONCURRENCY: "4" } });
  const floorInstance = `${s.prefix}f`;
  const floorRuntime = createDockerRuntime({ socketPath: s.env.DOCKER_SOCKET ?? "/var/run/docker.sock", instance: floorInstance });
  const images = parseWorkerConfig({ ...s.env, ...lab.env });
  try {
    const admin = { token: s.adminToken };
    const egress = {} as Record<Kind, string>;
    for (const k of KINDS) {
      const r = await s.request("POST", "/v1/admin/egress-ips", { ...admin, body: k === "wireguard" ? lab.wireguard.egress : lab.proxies.shadowsocks.egress });
      if (r.status !== 201) throw new Error(`create egress: ${r.status} ${JSON.stringify(r.body)}`);
      egress[k] = r.body.egress_ip.id;
    }
    const exitIp: Record<Kind, string> = { wireguard: lab.wireguard.exit_ip, shadowsocks: lab.proxies.shadowsocks.exit_ip };
    // The baseline's host (it takes the first warm member; the pool refills before the runs).
    const running = await s.createHost();
    const env = sshEnv(s);
    const sshTrue = (shortId: string, key: string) => proxyArgv(s, { ...running, shortId, userKey: key }, "publickey", ["true"]);

    let n = 0;
    const owner = async () => {
      const i = n++;
      const key = join(s.dir, `eg_owner${i}`);
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `eg${i}`, "-f", key]);
      const u = await s.request("POST", "/v1/admin/users", { ...admin, body: { username: `eg${i}${randomBytes(3).toString("hex")}`, password: `pw-${randomBytes(8).toString("hex")}` } });
      const k = await s.request("POST", `/v1/admin/users/${u.body.user.id}/ssh-keys`, { ...admin, body: { public_key: readFileSync(`${key}.pub`, "utf8").trim() } });
      if (k.status !== 201) throw new Error(`add key: ${k.status} ${JSON.stringify(k.body)}`);
      return { userId: u.body.user.id as string, key };
    };
    const remove = async (hostId: string) => {
      const del = await s.request("DELETE", `/v1/admin/hosts/${hostId}`, admin);
      await waitTaskRow(s, del.body.task_id);
    };

    /** One create; `warm` asks that the ready member was claimed (else that none could be). */
    const create = async (o: { egressKind?: Kind; cold?: boolean; ssh?: boolean; check?: boolean }) => {
      const who = await owner();
      await waitPoolReady(s);
      const [member] = await s.database.sql<{ id: string }[]>`select id from host_pool where state = 'ready' limit 1`;
      const body = { user_id: who.userId, ...(o.egressKind ? { egress_ip_id: egress[o.egressKind] } : {}), ...(o.cold ? { timezone: "Europe/Paris" } : {}) };
      const t0 = performance.now();
      const res = await s.request("POST", "/v1/admin/hosts", { ...admin, body });
      if (res.status !== 202) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
      await waitTaskRow(s, res.body.task_id);
      const succeeded = performance.now() - t0;
      let ssh = NaN;
      if (o.ssh) {
        const r = await run("ssh", sshTrue(res.body.host.short_id, who.key), env);
        ssh = performance.now() - t0;
        if (r.code !== 0) throw new Error(`ssh to the new host exited ${r.code}`);
      }
      const warm = res.body.host.id === member?.id;
      if (warm === !!o.cold) throw new Error(o.cold ? "the cold create claimed a member" : "the create did not claim the ready member");
      // Once per kind (not timed): the host's traffic leaves from the egress's exit address.
      if (o.check && o.egressKind) {
        const ip = await run("docker", ["exec", "-u", "workspace", hostContainerName(res.body.host.id), "curl", "-s", "-m", "5", `http://${lab.echo.address}/ip`]);
        if (ip.stdout !== exitIp[o.egressKind]) throw new Error(`${o.egressKind} host: exit ${ip.stdout}, want ${exitIp[o.egressKind]}`);
      }
      const detail = await stepsOf(s, res.body.task_id);
      await remove(res.body.host.id);
      return { succeeded, ssh, detail };
    };

    const test = async (k: Kind) => {
      // As the pool is refilled before each create: the worker's spare gateway is made before
      // each test (it is made after a test, in the background; EGRESS_TEST_SPARE).
      await s.workerDeps.testSpare?.settled();
      const t0 = performance.now();
      const r = await s.request("POST", `/v1/admin/egress-ips/${egress[k]}/test`, admin);
      const ms = performance.now() - t0;
      if (r.status !== 200 || r.body.status !== "passed") throw new Error(`egress test ${k}: ${r.status} ${JSON.stringify(r.body)}`);
      return { ms, detail: await stepsOf(s, r.body.task_id) };
    };

    const floorSsh = async () => {
      const f0 = performance.now();
      const fc = await run("ssh", sshTrue(running.shortId, running.userKey), env);
      if (fc.code !== 0) throw new Error(`ssh to the running host exited ${fc.code}`);
      return performance.now() - f0;
    };

    const m = {
      none: [] as number[],
      cold: [] as number[],
      floor: [] as number[],
      sshFloor: [] as number[],
      succeeded: { wireguard: [] as number[], shadowsocks: [] as number[] },
      ssh: { wireguard: [] as number[], shadowsocks: [] as number[] },
      test: { wireguard: [] as number[], shadowsocks: [] as number[] },
    };
    process.stdout.write(`egress create, N=${N} rounds (+1 warm-up), sequential\n`);
    for (let i = -1; i < N; i++) {
      const none = await create({});
      const eg = {} as Record<Kind, Awaited<ReturnType<typeof create>>>;
      for (const k of KINDS) eg[k] = await create({ egressKind: k, ssh: true, check: i === -1 });
      const cold = await create({ cold: true });
      const floor = await createFloor(floorRuntime, floorInstance, images);
      const sshFloor = await floorSsh();
      const tests = {} as Record<Kind, { ms: number; detail: string }>;
      for (const k of KINDS) tests[k] = await test(k);
      if (i < 0) continue;
      m.none.push(none.succeeded);
      m.cold.push(cold.succeeded);
      m.floor.push(floor);
      m.sshFloor.push(sshFloor);
      for (const k of KINDS) {
        m.succeeded[k].push(eg[k].succeeded);
        m.ssh[k].push(eg[k].ssh);
        m.test[k].push(tests[k].ms);
      }
      process.stdout.write(
        `#${String(i + 1).padStart(2)}  warm none ${none.succeeded.toFixed(0)}   ` +
          KINDS.map((k) => `${k} ${eg[k].succeeded.toFixed(0)} / ssh ${eg[k].ssh.toFixed(0)}`).join("   ") +
          `   cold none ${cold.succeeded.toFixed(0)} (floor ${floor})   tests ${KINDS.map((k) => `${k} ${tests[k].ms.toFixed(0)}`).join(" ")}   ms\n` +
          `      wireguard: ${eg.wireguard.detail}\n      shadowsocks: ${eg.shadowsocks.detail}\n      cold: ${cold.detail}\n` +
          KINDS.map((k) => `      test ${k}: ${tests[k].detail}\n`).join(""),
      );
    }

    const p = (xs: number[], q: number) => Math.round(percentile(xs, q));
    const line = (label: string, xs: number[]) => `${label.padEnd(44)} p50 ${String(p(xs, 50)).padStart(6)} ms   p95 ${String(p(xs, 95)).padStart(6)} ms\n`;
    process.stdout.write(`\nN=${N}\n`);
    process.stdout.write(line("warm, no egress: POST → succeeded", m.none));
    for (const k of KINDS) {
      process.stdout.write(line(`warm, ${k}: POST → succeeded`, m.succeeded[k]));
      process.stdout.write(line(`warm, ${k}: POST → ssh … true`, m.ssh[k]));
    }
    process.stdout.write(line("cold, no egress: POST → succeeded", m.cold));
    process.stdout.write(line("floor: create+start → banner", m.floor));
    process.stdout.write(line("floor: ssh … true to a running host", m.sshFloor));
    for (const k of KINDS) process.stdout.write(line(`egress test, ${k}: POST → verdict`, m.test[k]));

    const sshLabel = "ssh … true, host already running";
    writeBenchResult("egress-create", [
      benchRow({ path: "POST create, no egress, checks configured → succeeded (warm) p50", unit: "ms", ours: p(m.none, 50), target: { of: "ours", op: "<=", value: 200 } }),
      benchRow({ path: "POST create, no egress, checks configured → succeeded (cold) p50", unit: "ms", ours: p(m.cold, 50), baseline: p(m.floor, 50), baselineLabel: "floor: create+start → banner", target: { of: "ratio", op: "<=", value: 1.1, text: "p50 ≤ 1.1× floor" } }),
      ...KINDS.map((k) =>
        benchRow({ path: `POST create with ${k} bound → ssh runs a command p50`, unit: "ms", ours: p(m.ssh[k], 50), baseline: p(m.sshFloor, 50), baselineLabel: sshLabel, target: { of: "ours", op: "<=", value: 1000 } }),
      ),
      ...KINDS.map((k) => benchRow({ path: `egress test, ${k}, all checks passing p50`, unit: "ms", ours: p(m.test[k], 50), target: { of: "ours", op: "<=", value: 800 } })),
    ]);
  } finally {
    removeInstanceObjects(floorInstance);
    await s.close();
  }
}

runBench(main);
