import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { benchRow, type BenchResult, evaluateTarget, formatNumber, formatTable, tally, targetText, writeBenchResult } from "./report.js";

describe("evaluateTarget", () => {
  it("compares the measured value, the ratio or the added amount, inclusive at the bound", () => {
    expect(evaluateTarget({ of: "ours", op: "<=", value: 15 }, 15, null)).toBe(true);
    expect(evaluateTarget({ of: "ours", op: "<=", value: 15 }, 15.01, null)).toBe(false);
    expect(evaluateTarget({ of: "ratio", op: ">=", value: 0.95 }, 95, 100)).toBe(true);
    expect(evaluateTarget({ of: "ratio", op: ">=", value: 0.95 }, 94, 100)).toBe(false);
    expect(evaluateTarget({ of: "added", op: "<=", value: 20 }, 70, 50)).toBe(true);
    expect(evaluateTarget({ of: "added", op: "<=", value: 20 }, 70.5, 50)).toBe(false);
  });

  it("cannot say without the baseline a ratio needs, nor from a non-finite value", () => {
    expect(evaluateTarget({ of: "ratio", op: ">=", value: 0.9 }, 10, null)).toBeNull();
    expect(evaluateTarget({ of: "ratio", op: ">=", value: 0.9 }, 10, 0)).toBeNull();
    expect(evaluateTarget({ of: "ours", op: "<=", value: 1 }, Number.NaN, null)).toBeNull();
  });
});

describe("benchRow", () => {
  it("computes the ratio and whether the target is met, and words the target", () => {
    const r = benchRow({ path: "GET /x p99", unit: "ms", ours: 12, baseline: 3, target: { of: "ours", op: "<=", value: 15, text: "p99 ≤ 15 ms" } });
    expect(r).toMatchObject({ ratio: 4, target: "p99 ≤ 15 ms", met: true });
    expect(targetText({ of: "ratio", op: ">=", value: 0.95 }, "MiB/s")).toBe("≥ 0.95× baseline");
    expect(targetText({ of: "added", op: "<=", value: 20 }, "ms")).toBe("added ≤ 20 ms");
  });

  it("leaves a text-only target unevaluated and a path without target blank", () => {
    expect(benchRow({ path: "p", unit: "MiB/s", ours: 1, target: "≥ 0.9× bare engine" })).toMatchObject({ met: null, ratio: null, target: "≥ 0.9× bare engine" });
    expect(benchRow({ path: "p", unit: "ms", ours: 1 })).toMatchObject({ met: null, target: "" });
  });
});

describe("formatTable", () => {
  const results: BenchResult[] = [
    {
      bench: "api-reads",
      rows: [
        benchRow({ path: "GET hosts p99", unit: "ms", ours: 9.87, baseline: 1.2, baselineLabel: "/healthz", target: { of: "ours", op: "<=", value: 15 } }),
        benchRow({ path: "GET own host p99", unit: "ms", ours: 16, baseline: 1.2, target: { of: "ours", op: "<=", value: 15 } }),
      ],
    },
    { bench: "egress", rows: [], skipped: "lab not up" },
    { bench: "ssh-throughput", rows: [], failed: "exit 1" },
    { bench: "vnc-proxy", rows: [benchRow({ path: "rtt p50", unit: "ms", ours: 0.5, baseline: 0.25 })] },
    { bench: "ssh-concurrency", rows: [benchRow({ path: "sessions", unit: "sessions", ours: 998 })], failed: "exit 1" },
  ];

  it("prints one aligned table with a line per row, a skip as skipped and a failure as NO (after any rows it wrote)", () => {
    const lines = formatTable(results).split("\n");
    expect(lines[0]).toMatch(/^\| bench +\| path +\| baseline +\| ours +\| ratio +\| target +\| met\? +\|$/);
    expect(lines[1]).toMatch(/^\|-+\|/);
    expect(new Set(lines.map((l) => [...l].length)).size).toBe(1);
    const cells = (l: string) => l.split("|").slice(1, -1).map((c) => c.trim());
    expect(cells(lines[2]!)).toEqual(["api-reads", "GET hosts p99", "1.20 ms (/healthz)", "9.87 ms", "8.22×", "≤ 15 ms", "yes"]);
    expect(cells(lines[3]!)).toEqual(["api-reads", "GET own host p99", "1.20 ms", "16 ms", "13.33×", "≤ 15 ms", "NO"]);
    expect(cells(lines[4]!)).toEqual(["egress", "skipped: lab not up", "", "", "", "", "skipped"]);
    expect(cells(lines[5]!)).toEqual(["ssh-throughput", "failed: exit 1", "", "", "", "", "NO"]);
    expect(cells(lines[6]!)).toEqual(["vnc-proxy", "rtt p50", "0.250 ms", "0.500 ms", "2.00×", "", ""]);
    expect(cells(lines[7]!)).toEqual(["ssh-concurrency", "sessions", "—", "998 sessions", "—", "", ""]);
    expect(cells(lines[8]!)).toEqual(["ssh-concurrency", "failed: exit 1", "", "", "", "", "NO"]);
  });

  it("never counts a skip as met", () => {
    expect(tally(results)).toEqual({ met: 1, missed: 1, unknown: 0, skipped: 1, failed: 2 });
  });
});

describe("formatNumber", () => {
  it("keeps about three significant digits", () => {
    expect([1234.5, 98.76, 9.876, 0.1234, 7].map(formatNumber)).toEqual(["1235", "98.8", "9.88", "0.123", "7"]);
  });
});

describe("writeBenchResult", () => {
  it("writes the rows only when BENCH_JSON names a file", () => {
    const dir = mkdtempSync(join(tmpdir(), "ccp-report-test-"));
    try {
      const file = join(dir, "r.json");
      const rows = [benchRow({ path: "p", unit: "ms", ours: 1 })];
      writeBenchResult("x", rows, {});
      expect(() => readFileSync(file)).toThrow();
      writeBenchResult("x", rows, { BENCH_JSON: file });
      expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ bench: "x", rows });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
