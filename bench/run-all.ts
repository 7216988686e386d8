/**
 * `npm run bench`: runs every benchmark registered in bench/benches.ts, one after another (each
 * wants the whole machine), and prints one table: path, baseline, ours, ratio, target, met?
 *
 *   npm run bench                                  every bench, full iterations
 *   npm run bench -- --only host-create,api-reads  a selection
 *   BENCH_QUICK=1 npm run bench   (or -- --quick)  smoke run: few iterations, numbers not quotable
 *   npm run bench -- --json results.json           also write every result as JSON
 *
 * Each bench runs as its own process with BENCH_JSON=<file> and writes its rows there
 * (bench/lib/report.ts); its own output is passed through, prefixed with its name. A bench that
 * needs the egress lab runs only when the lab is up (`npm run lab:up`), else its line says
 * "skipped: lab not up". A bench that exits non-zero or reports nothing is a "failed" line.
 * Exit code: 1 when a bench failed, 0 otherwise (a missed target is a finding, not a crash).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { BENCHES, type BenchDescriptor } from "./benches.js";
import { type BenchResult, formatTable, tally } from "./lib/report.js";

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    quick: { type: "boolean", default: false },
    json: { type: "string" },
  },
});
const quick = values.quick || process.env.BENCH_QUICK === "1";

function selected(): BenchDescriptor[] {
  if (!values.only) return BENCHES;
  const names = values.only.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !BENCHES.some((b) => b.name === n));
  if (unknown.length) {
    console.error(`unknown bench: ${unknown.join(", ")} (known: ${BENCHES.map((b) => b.name).join(", ")})`);
    process.exit(2);
  }
  return BENCHES.filter((b) => names.includes(b.name));
}

/** The lab is up when its lab.json exists and its echo server runs (test/lab/up.sh makes both). */
function labIsUp(): boolean {
  const state = process.env.CCP_LAB_STATE ?? "/tmp/ccp-lab";
  if (!existsSync(join(state, "lab.json"))) return false;
  const r = spawnSync("docker", ["inspect", "-f", "{{.State.Running}}", "ccp-lab-echo"], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() === "true";
}

function runOne(b: BenchDescriptor, dir: string): Promise<BenchResult> {
  const file = join(dir, `${b.name}.json`);
  const args = quick ? b.quickArgs : b.args;
  const t0 = Date.now();
  console.log(`\n=== ${b.name}: bench/${b.script} ${args.join(" ")}${quick ? " (quick)" : ""}`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, b.script), ...args], {
      env: { ...process.env, BENCH_JSON: file, ...(quick ? { BENCH_QUICK: "1" } : {}) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (l) => (stream === child.stdout ? process.stdout : process.stderr).write(`[${b.name}] ${l}\n`));
    }
    child.on("close", (code, signal) => {
      const seconds = ((Date.now() - t0) / 1000).toFixed(0);
      console.log(`=== ${b.name}: exit ${code ?? signal} after ${seconds} s`);
      let reported: BenchResult | undefined;
      try {
        reported = JSON.parse(readFileSync(file, "utf8")) as BenchResult;
      } catch {
        // No result file: reported below as a failure.
      }
      if (code !== 0) resolve({ bench: b.name, rows: reported?.rows ?? [], failed: `exit ${code ?? signal}` });
      else if (!reported) resolve({ bench: b.name, rows: [], failed: "no result written" });
      else resolve({ ...reported, bench: b.name });
    });
  });
}

async function main() {
  const benches = selected();
  const dir = mkdtempSync(join(tmpdir(), "ccp-bench-results-"));
  const results: BenchResult[] = [];
  const onSignal = () => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  try {
    const lab = benches.some((b) => b.needs === "lab") ? labIsUp() : false;
    for (const b of benches) {
      if (b.needs === "lab" && !lab) {
        results.push({ bench: b.name, rows: [], skipped: "lab not up" });
        continue;
      }
      results.push(await runOne(b, dir));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (values.json) writeFileSync(values.json, `${JSON.stringify({ quick, results }, null, 2)}\n`);
  const t = tally(results);
  console.log(`\n${quick ? "QUICK RUN (smoke test: few iterations, do not quote these numbers)\n" : ""}${formatTable(results)}`);
  console.log(`targets met ${t.met}, missed ${t.missed}, not evaluable ${t.unknown}; benches skipped ${t.skipped}, failed ${t.failed}`);
  process.exit(t.failed ? 1 : 0);
}

void main();
