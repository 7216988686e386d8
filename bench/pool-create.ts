/**
 * Host creation from the warm pool (docs/architecture.md#warm-pool; issue 12 targets):
 *
 *   npx tsx bench/pool-create.ts [N=20]
 *
 * A stack of its own (bench/lib/stack.ts: in-process API and worker with HOST_POOL_SIZE=1, the
 * SSH proxy in its own process; own database, Redis prefix and Docker objects, all removed).
 * Each run, with the pool refilled and the owner and their key made beforehand (not timed):
 *  - "succeeded": from sending `POST /v1/admin/hosts` until the task row reads `succeeded`
 *    (read from Postgres every 2 ms, so the poll adds at most that);
 *  - "ssh": from the same POST until `ssh -p <proxy> <short id>@127.0.0.1 true` (OpenSSH, the
 *    owner's key) has exited 0, started the moment the task succeeded — what a client that waits
 *    for the task and then logs in sees.
 * Baseline, same run, interleaved: the same `ssh … true` through the proxy to a host that already
 * runs (the part no create can remove). Then the host is deleted and the pool refilled.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { benchQuick, benchRow, runBench, writeBenchResult } from "./lib/report.js";
import { type BenchStack, percentile, proxyArgv, sshEnv, startBenchStack, waitPoolReady, waitTaskRow } from "./lib/stack.js";

const N = Math.max(1, Number(process.argv[2] ?? (benchQuick() ? 3 : 20)) || 20);

function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number | null> {
  return new Promise((resolve) => {
    const c = spawn("ssh", argv, { env, stdio: ["ignore", "ignore", "pipe"] });
    c.stderr.resume();
    c.on("close", (code) => resolve(code));
  });
}


async function main() {
  const s = await startBenchStack({ workerEnv: { HOST_POOL_SIZE: "1" } });
  try {
    // The baseline's host (it takes the first warm member; the pool refills before the runs).
    const running = await s.createHost();
    const owner = (i: number) => {
      const key = join(s.dir, `pool_owner${i}`);
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `pool${i}`, "-f", key]);
      return key;
    };
    const env = sshEnv(s);
    const sshTrue = (shortId: string, key: string) => proxyArgv(s, { ...running, shortId, userKey: key }, "publickey", ["true"]);

    const succeeded: number[] = [];
    const toSsh: number[] = [];
    const floor: number[] = [];
    let claimed = 0;
    for (let i = -1; i < N; i++) {
      const key = owner(i + 1);
      const u = await s.request("POST", "/v1/admin/users", { token: s.adminToken, body: { username: `pool${i + 1}${randomBytes(3).toString("hex")}`, password: `pw-${randomBytes(8).toString("hex")}` } });
      const k = await s.request("POST", `/v1/admin/users/${u.body.user.id}/ssh-keys`, { token: s.adminToken, body: { public_key: readFileSync(`${key}.pub`, "utf8").trim() } });
      if (k.status !== 201) throw new Error(`add key: ${k.status} ${JSON.stringify(k.body)}`);
      await waitPoolReady(s);
      const [member] = await s.database.sql<{ id: string }[]>`select id from host_pool where state = 'ready' limit 1`;

      const t0 = performance.now();
      const res = await s.request("POST", "/v1/admin/hosts", { token: s.adminToken, body: { user_id: u.body.user.id } });
      if (res.status !== 202) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
      await waitTaskRow(s, res.body.task_id);
      const tTask = performance.now() - t0;
      const code = await run(sshTrue(res.body.host.short_id, key), env);
      const tSsh = performance.now() - t0;
      if (code !== 0) throw new Error(`ssh to the new host exited ${code}`);

      const f0 = performance.now();
      const fc = await run(sshTrue(running.shortId, running.userKey), env);
      const tFloor = performance.now() - f0;
      if (fc !== 0) throw new Error(`ssh to the running host exited ${fc}`);

      const warm = res.body.host.id === member?.id;
      if (i >= 0) {
        if (!warm) throw new Error("the create did not claim the ready member");
        claimed++;
        succeeded.push(tTask);
        toSsh.push(tSsh);
        floor.push(tFloor);
        // Where the time went: queue → claim of the task, each step's own duration, the finish.
        const [t] = await s.database.sql<{ created_at: string; started_at: string; finished_at: string; steps: { name: string; duration_ms?: number }[] }[]>`
          select created_at::text, started_at::text, finished_at::text, steps from tasks where id = ${res.body.task_id}`;
        const stepsMs = t!.steps.filter((x) => x.duration_ms).map((x) => `${x.name} ${x.duration_ms}`).join(", ");
        const ms = (v: Date | string) => new Date(v).getTime();
        const pickup = ms(t!.started_at) - ms(t!.created_at);
        const work = ms(t!.finished_at) - ms(t!.started_at);
        process.stdout.write(
          `#${String(i + 1).padStart(2)}  succeeded ${tTask.toFixed(0)} ms   ssh ${tSsh.toFixed(0)} ms   floor ssh ${tFloor.toFixed(0)} ms` +
            `   (task: queued→started ${pickup} ms, started→finished ${work} ms; ${stepsMs})\n`,
        );
      }
      const del = await s.request("DELETE", `/v1/admin/hosts/${res.body.host.id}`, { token: s.adminToken });
      await waitTaskRow(s, del.body.task_id);
    }

    const p = (xs: number[], q: number) => Math.round(percentile(xs, q));
    process.stdout.write(`\nwarm-pool create, N=${N} sequential, ${claimed} claims\n`);
    process.stdout.write(`POST → task succeeded   p50 ${p(succeeded, 50)} ms   p95 ${p(succeeded, 95)} ms\n`);
    process.stdout.write(`POST → ssh … true       p50 ${p(toSsh, 50)} ms   p95 ${p(toSsh, 95)} ms\n`);
    process.stdout.write(`floor: ssh … true to a running host   p50 ${p(floor, 50)} ms   p95 ${p(floor, 95)} ms\n`);
    const label = "ssh … true, host already running";
    writeBenchResult("pool-create", [
      benchRow({ path: "POST create → task succeeded (warm pool) p50", unit: "ms", ours: p(succeeded, 50), target: { of: "ours", op: "<=", value: 200 } }),
      benchRow({ path: "POST create → ssh runs a command (warm pool) p50", unit: "ms", ours: p(toSsh, 50), baseline: p(floor, 50), baselineLabel: label, target: { of: "ours", op: "<=", value: 300 } }),
      benchRow({ path: "POST create → ssh runs a command (warm pool) p95", unit: "ms", ours: p(toSsh, 95), baseline: p(floor, 95), baselineLabel: label, target: { of: "ours", op: "<=", value: 600 } }),
    ]);
  } finally {
    await s.close();
  }
}

runBench(main);
