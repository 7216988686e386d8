/**
 * Task flood (issue 10 §2): one tenant fires 5,000 rebuild / SSH-key requests at the API while
 * another tenant's `host.start` runs; the victim's start time (POST start → task `succeeded`) is
 * printed next to the same start with no flood, measured in the same run. Runs alternate
 * (quiet, flooded, quiet, flooded …) so background noise hits both series alike.
 *
 *   npx tsx bench/task-flood.ts [--runs 5] [--requests 5000] [--concurrency 32]
 *
 * The flood uses the attacker's own user token (a tenant, not an admin) against their own host;
 * every request is a mutating one the portal offers: rebuild (both modes, alternating) and
 * generating an SSH key. What bounds it: the per-user budget (USER_MUTATIONS_PER_MINUTE, 429
 * rate_limited, answered before the body is read), the "already waiting" answer (202 with the
 * same task) and the per-host queue cap (429 too_many_tasks). The summary prints how the flood's
 * requests were answered and how many tasks it queued.
 *
 * Needs what the docker tests need (Postgres, Redis, Docker with the host and gateway images).
 */
import { parseArgs } from "node:util";
import { benchRow, writeBenchResult } from "./lib/report.js";
import { type BenchStack, median, percentile, startBenchStack } from "./lib/stack.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    requests: { type: "string", default: "5000" },
    concurrency: { type: "string", default: "32" },
  },
});
const RUNS = Math.max(1, Number(values.runs));
const REQUESTS = Math.max(1, Number(values.requests));
const CONCURRENCY = Math.max(1, Number(values.concurrency));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitTask(s: BenchStack, id: string): Promise<void> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const t = await s.request("GET", `/v1/admin/tasks/${id}`, { token: s.adminToken });
    const status = t.body.task.status as string;
    if (status === "succeeded") return;
    if (status === "failed" || status === "canceled") throw new Error(`task ${id} ${status}: ${t.body.task.error_code}`);
    if (Date.now() > deadline) throw new Error(`task ${id} not done in time`);
    await sleep(20);
  }
}

/** The victim's start, timed: POST → task succeeded. Then a stop (not timed) to reset. */
async function timedStart(s: BenchStack, hostId: string): Promise<number> {
  const t0 = performance.now();
  const r = await s.request("POST", `/v1/admin/hosts/${hostId}/start`, { token: s.adminToken });
  if (r.status !== 202) throw new Error(`start: ${r.status} ${JSON.stringify(r.body)}`);
  await waitTask(s, r.body.task_id);
  const ms = performance.now() - t0;
  const stop = await s.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: s.adminToken });
  await waitTask(s, stop.body.task_id);
  return ms;
}

interface FloodResult {
  statuses: Map<string, number>;
  seconds: number;
}

/** REQUESTS mutating requests from the attacker, CONCURRENCY at a time, until all are answered. */
async function flood(s: BenchStack, token: string, hostId: string): Promise<FloodResult> {
  const statuses = new Map<string, number>();
  let next = 0;
  const t0 = performance.now();
  const one = async (i: number) => {
    const r =
      i % 3 === 2
        ? await s.request("POST", "/v1/user/ssh-keys/generate", { token, body: { label: `flood${i}` } })
        : await s.request("POST", `/v1/user/hosts/${hostId}/rebuild`, { token, body: { mode: i % 3 === 0 ? "preserve-home" : "wipe-home" } });
    const key = `${r.status}${r.body?.code ? ` ${r.body.code}` : ""}`;
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
  };
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) await one(next++);
    }),
  );
  return { statuses, seconds: (performance.now() - t0) / 1000 };
}

async function main() {
  const s = await startBenchStack();
  try {
    const victim = await s.createHost();
    const stop = await s.request("POST", `/v1/admin/hosts/${victim.id}/stop`, { token: s.adminToken });
    await waitTask(s, stop.body.task_id);
    await timedStart(s, victim.id); // warm-up, not counted

    const quiet: number[] = [];
    const loaded: number[] = [];
    const floods: FloodResult[] = [];
    const attackerHosts: string[] = [];
    for (let i = 0; i < RUNS; i++) {
      // A fresh attacker per run (own user, own running host): each flood starts with a full
      // per-minute budget, as a patient attacker's would, without the bench waiting a minute.
      const attacker = await s.createHost();
      attackerHosts.push(attacker.id);
      quiet.push(await timedStart(s, victim.id));
      const f = flood(s, attacker.userToken, attacker.id);
      loaded.push(await timedStart(s, victim.id));
      floods.push(await f);
      process.stdout.write(`run ${i + 1}/${RUNS}: quiet ${quiet.at(-1)!.toFixed(0)} ms, flooded ${loaded.at(-1)!.toFixed(0)} ms\n`);
    }
    const [tasks] = await s.database.sql<{ n: number }[]>`select count(*)::int as n from tasks where host_id = any(${attackerHosts}::uuid[])`;
    const total = new Map<string, number>();
    for (const f of floods) for (const [k, v] of f.statuses) total.set(k, (total.get(k) ?? 0) + v);

    const line = (label: string, xs: number[]) =>
      `${label.padEnd(34)} p50 ${median(xs).toFixed(0).padStart(6)} ms   p95 ${percentile(xs, 95).toFixed(0).padStart(6)} ms`;
    console.log(`\nvictim host.start (POST → succeeded), ${RUNS} runs each, alternating`);
    console.log(line("no flood (same run)", quiet));
    console.log(line(`during a ${REQUESTS}-request flood`, loaded));
    console.log(`ratio flooded / quiet p50: ${(median(loaded) / median(quiet)).toFixed(2)}×`);
    console.log(`\nflood: ${REQUESTS} requests × ${RUNS}, ${CONCURRENCY} at a time, ${median(floods.map((f) => REQUESTS / f.seconds)).toFixed(0)} req/s median`);
    for (const [k, v] of [...total].sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(28)} ${v}`);
    console.log(`tasks queued on the attackers' hosts: ${tasks!.n} over ${RUNS} floods (their creates included)`);
    writeBenchResult("task-flood", [
      benchRow({ path: `victim host.start p50 during a ${REQUESTS}-request flood`, unit: "ms", ours: median(loaded), baseline: median(quiet), baselineLabel: "no flood" }),
    ]);
  } finally {
    await s.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
