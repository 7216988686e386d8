/**
 * Wake on arrival (docs/idle.md#wake): wall time of `ssh … true` through the proxy to a host the
 * idle scan stopped (the login starts it, waits, then runs the command) vs the same command to
 * the same host while it runs, the baseline measured in the same run. Each round: the scan stops
 * the host (its idle window moved into the past, then the real scan and the real `host.stop`),
 * one timed login wakes it, then one timed login to the running host. Medians and their ratio.
 *
 *   npx tsx bench/idle-wake.ts [--runs 10]
 */
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { runIdleScan } from "../worker/schedulers/idle.js";
import { benchRow, runBench, writeBenchResult } from "./lib/report.js";
import { type BenchStack, median, proxyArgv, sshEnv, startBenchStack, waitTaskRow } from "./lib/stack.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "10" } } });
const RUNS = Number(values.runs);

function timeSsh(argv: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    // LogLevel INFO (OpenSSH's default) so the wake's progress banners are printed; the first
    // value of an option wins, so it goes before the stack's LogLevel=ERROR.
    const p = spawn("ssh", ["-o", "LogLevel=INFO", ...argv], { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("close", (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) reject(new Error(`ssh exited ${code}: ${err.trim()}`));
      else resolve({ ms, stderr: err });
    });
  });
}

/** The idle scan stops the host: its window moved two minutes back, scans until one stops it (CPU settles). */
async function idleStop(s: BenchStack, hostId: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    await s.database.sql`update hosts set last_active_at = now() - interval '2 minutes' where id = ${hostId}`;
    if ((await runIdleScan(s.workerDeps)).idle_stopped === 1) break;
    if (Date.now() > deadline) throw new Error("the idle scan did not stop the host");
    await new Promise((r) => setTimeout(r, 200));
  }
  const [t] = await s.database.sql<{ id: string }[]>`
    select id from tasks where host_id = ${hostId} and kind = 'host.stop' and requested_by = 'system:idle' order by created_at desc limit 1`;
  await waitTaskRow(s, t!.id);
}

async function main() {
  let stack: BenchStack | undefined;
  try {
    // The scheduler never fires by itself: each round runs the scan.
    stack = await startBenchStack({ workerEnv: { IDLE_SCAN_INTERVAL_SECONDS: "86400" } });
    const host = await stack.createHost();
    const patch = await stack.request("PATCH", `/v1/admin/hosts/${host.id}`, { token: stack.adminToken, body: { idle_stop_minutes: 1 } });
    if (patch.status !== 200) throw new Error(`PATCH answered ${patch.status}`);
    const argv = proxyArgv(stack, host, "publickey", ["true"]);
    const env = sshEnv(stack);
    await timeSsh(argv, env); // warm-up (not counted)
    const stopped: number[] = [];
    const running: number[] = [];
    let sample = "";
    for (let i = 0; i < RUNS; i++) {
      await idleStop(stack, host.id);
      const w = await timeSsh(argv, env);
      if (!w.stderr.includes("waking")) throw new Error(`no wake seen: ${w.stderr}`);
      sample ||= w.stderr;
      stopped.push(w.ms);
      running.push((await timeSsh(argv, env)).ms);
      console.log(`round ${i + 1}/${RUNS}: stopped → shell ${w.ms.toFixed(0)} ms, running → shell ${running.at(-1)!.toFixed(0)} ms`);
    }
    const [wakes] = await stack.database.sql<{ n: number; p50: number }[]>`
      select count(*)::int as n, percentile_cont(0.5) within group (order by (metadata->>'duration_ms')::int) as p50
      from events where type = 'host.woken' and host_id = ${host.id}`;
    console.log(`\nwhat the client printed on the first wake:\n${sample}`);
    console.log(`stopped → shell median ${median(stopped).toFixed(0)} ms, running → shell median ${median(running).toFixed(0)} ms, ratio ${(median(stopped) / median(running)).toFixed(1)}×`);
    console.log(`host.woken events: ${wakes!.n}, median duration_ms (wake request → running) ${Math.round(wakes!.p50)}`);
    writeBenchResult("idle-wake", [
      benchRow({
        path: "ssh … true to a host stopped for idleness (wake) median",
        unit: "ms",
        ours: median(stopped),
        baseline: median(running),
        baselineLabel: "same host running",
        note: `${RUNS} rounds; host.woken median ${Math.round(wakes!.p50)} ms`,
      }),
    ]);
  } finally {
    await stack?.close();
  }
}

runBench(main);
