/**
 * The one result shape every benchmark reports (issue 12: `npm run bench` prints one table).
 *
 * A bench keeps printing its own detailed output; at the end it calls `writeBenchResult` with its
 * summary rows. When `BENCH_JSON=<file>` is set (the runner, bench/run-all.ts, sets it) the rows
 * are written there as JSON; without it nothing happens, so running a bench by hand is unchanged.
 * Pure apart from that one write: formatting and target evaluation are unit-tested
 * (report.test.ts).
 */
import { writeFileSync } from "node:fs";

/**
 * A target as data, so the runner can show it and say whether it is met without knowing the bench:
 * `ours` (the measured value), `ratio` (ours / baseline) or `added` (ours − baseline) compared
 * with `value`.
 */
export interface Target {
  of: "ours" | "ratio" | "added";
  op: "<=" | ">=";
  value: number;
  /** How the issue states it, e.g. "p99 ≤ 15 ms"; derived from the rest when absent. */
  text?: string;
}

/** One line of the table: a measured path next to its same-run baseline. */
export interface BenchRow {
  /** What was measured, e.g. "GET /v1/admin/hosts?limit=200 p99". */
  path: string;
  /** Unit of `baseline` and `ours` ("ms", "MiB/s", "sessions", …). */
  unit: string;
  /** The same run's baseline (median, or the same percentile as `ours`); null when the path has none. */
  baseline: number | null;
  /** What the baseline is, e.g. "GET /healthz". */
  baselineLabel?: string;
  ours: number;
  /** ours / baseline (null without a baseline). */
  ratio: number | null;
  /** The target's text, as shown in the table ("" when the path has no target of its own). */
  target: string;
  /** Whether the target is met; null when there is no target or it cannot be evaluated. */
  met: boolean | null;
  note?: string;
}

/** What a bench run produced: rows, or a reason it did not measure (never counted as met). */
export interface BenchResult {
  bench: string;
  rows: BenchRow[];
  /** Set by the runner when the bench was not run (e.g. "lab not up") or did not finish. */
  skipped?: string;
  failed?: string;
}

export function targetText(t: Target, unit: string): string {
  if (t.text) return t.text;
  const op = t.op === "<=" ? "≤" : "≥";
  if (t.of === "ratio") return `${op} ${t.value}× baseline`;
  return t.of === "added" ? `added ${op} ${t.value} ${unit}` : `${op} ${t.value} ${unit}`;
}

/** Evaluates a target; null when it needs a ratio and there is no baseline, or a value is not finite. */
export function evaluateTarget(t: Target, ours: number, baseline: number | null): boolean | null {
  const v =
    t.of === "ours" ? ours
    : baseline === null ? null
    : t.of === "added" ? ours - baseline
    : baseline === 0 ? null
    : ours / baseline;
  if (v === null || !Number.isFinite(v)) return null;
  return t.op === "<=" ? v <= t.value : v >= t.value;
}

/** A row from measured values and a target (or none): ratio and `met` computed here, in one place. */
export function benchRow(o: {
  path: string;
  unit: string;
  ours: number;
  baseline?: number | null;
  baselineLabel?: string;
  /** A Target, or only a text when the bench cannot evaluate it yet (shown as "?", never as met). */
  target?: Target | string;
  note?: string;
}): BenchRow {
  const baseline = o.baseline ?? null;
  return {
    path: o.path,
    unit: o.unit,
    baseline,
    ...(o.baselineLabel ? { baselineLabel: o.baselineLabel } : {}),
    ours: o.ours,
    ratio: baseline === null || baseline === 0 ? null : o.ours / baseline,
    target: typeof o.target === "string" ? o.target : o.target ? targetText(o.target, o.unit) : "",
    met: typeof o.target === "object" ? evaluateTarget(o.target, o.ours, baseline) : null,
    ...(o.note ? { note: o.note } : {}),
  };
}

/** Writes the bench's rows to $BENCH_JSON when the runner asked for them; a no-op otherwise. */
export function writeBenchResult(bench: string, rows: BenchRow[], env: NodeJS.ProcessEnv = process.env): void {
  const file = env.BENCH_JSON;
  if (!file) return;
  const result: BenchResult = { bench, rows };
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
}

/** True when the runner asked for a smoke run (fewer iterations; numbers not meant to be quoted). */
export const benchQuick = (env: NodeJS.ProcessEnv = process.env) => env.BENCH_QUICK === "1";

// ------------------------------------------------------------------------------------------------
// The table.
// ------------------------------------------------------------------------------------------------

const HEAD = ["bench", "path", "baseline", "ours", "ratio", "target", "met?"] as const;

/** A number with a precision that suits its size (3 significant digits, no exponent). */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

export function metText(met: boolean | null, hasTarget: boolean): string {
  if (!hasTarget) return "";
  return met === true ? "yes" : met === false ? "NO" : "?";
}

/** The table's cells, one array per line: a skipped or failed bench gets a line that says so. */
export function tableCells(results: BenchResult[]): string[][] {
  const lines: string[][] = [];
  for (const r of results) {
    if (r.skipped || r.rows.length === 0) {
      const why = r.skipped ? `skipped: ${r.skipped}` : r.failed ? `failed: ${r.failed}` : "no rows reported";
      lines.push([r.bench, why, "", "", "", "", r.skipped ? "skipped" : "NO"]);
      continue;
    }
    for (const row of r.rows) {
      const base = row.baseline === null ? "—" : `${formatNumber(row.baseline)} ${row.unit}${row.baselineLabel ? ` (${row.baselineLabel})` : ""}`;
      lines.push([
        r.bench,
        row.path,
        base,
        `${formatNumber(row.ours)} ${row.unit}`,
        row.ratio === null ? "—" : `${row.ratio.toFixed(2)}×`,
        row.target,
        metText(row.met, row.target !== ""),
      ]);
    }
    // Rows written before a non-zero exit (e.g. sessions that failed) stay visible, the exit too.
    if (r.failed) lines.push([r.bench, `failed: ${r.failed}`, "", "", "", "", "NO"]);
  }
  return lines;
}

/** One Markdown-compatible table (readable as plain text, pastes into an issue as is). */
export function formatTable(results: BenchResult[]): string {
  const rows = [[...HEAD], ...tableCells(results)];
  const widths = HEAD.map((_, i) => Math.max(...rows.map((r) => [...r[i]!].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c + " ".repeat(widths[i]! - [...c].length)).join(" | ")} |`;
  return [line(rows[0]!), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.slice(1).map(line)].join("\n");
}

/** Counts for the runner's last line and exit code. */
export function tally(results: BenchResult[]): { met: number; missed: number; unknown: number; skipped: number; failed: number } {
  const t = { met: 0, missed: 0, unknown: 0, skipped: 0, failed: 0 };
  for (const r of results) {
    if (r.skipped) t.skipped++;
    else if (r.failed || r.rows.length === 0) t.failed++;
    else
      for (const row of r.rows) {
        if (row.target === "") continue;
        if (row.met === true) t.met++;
        else if (row.met === false) t.missed++;
        else t.unknown++;
      }
  }
  return t;
}

/** A bench script's entry: exit 0 when `main` resolves, else the stack trace on stderr and exit 1. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
