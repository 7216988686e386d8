/**
 * Every benchmark `npm run bench` runs (bench/run-all.ts), in order. A new bench registers here
 * with one descriptor and, at its end, reports its rows with `writeBenchResult` (bench/lib/report.ts).
 */

export interface BenchDescriptor {
  /** Short name, used by `--only`; also the name the bench passes to writeBenchResult. */
  name: string;
  /** The script under bench/, run as `node --import tsx bench/<script> …args`. */
  script: string;
  /** Arguments of a full run (the figures: medians over ≥ 20 runs where it asks for them). */
  args: string[];
  /** Arguments of a smoke run (BENCH_QUICK=1): few iterations; the numbers are not to be quoted. */
  quickArgs: string[];
  /** What must be up before it can run; when missing the runner shows "skipped: …", never "met". */
  needs?: "lab";
  /**
   * How it reports: "json" = writes its rows to $BENCH_JSON (bench/lib/report.ts). The only kind
   * today; a bench that cannot is not listed here until it can.
   */
  reports: "json";
}

export const BENCHES: BenchDescriptor[] = [
  { name: "api-reads", script: "api-reads.ts", args: ["--seconds", "10"], quickArgs: ["--seconds", "2", "--warmup", "1"], reports: "json" },
  { name: "host-create", script: "host-create.ts", args: ["20"], quickArgs: ["2"], reports: "json" },
  // Warm pool (HOST_POOL_SIZE=1 in its own stack): POST → succeeded and POST → ssh runs a command.
  { name: "pool-create", script: "pool-create.ts", args: ["20"], quickArgs: ["3"], reports: "json" },
  { name: "ssh-latency", script: "ssh-latency.ts", args: ["--runs", "30"], quickArgs: ["--runs", "3"], reports: "json" },
  // Wake on arrival (docs/idle.md#wake): ssh … true to a host the idle scan stopped vs to it running.
  { name: "idle-wake", script: "idle-wake.ts", args: ["--runs", "10"], quickArgs: ["--runs", "2"], reports: "json" },
  {
    name: "ssh-throughput",
    script: "ssh-throughput.ts",
    args: ["--runs", "3", "--bytes", String(1024 ** 3)],
    quickArgs: ["--runs", "1", "--bytes", String(64 * 1024 ** 2)],
    reports: "json",
  },
  // SSH session recording's cost: a pty stream with the host's policy off vs output (docs/sessions.md#recording).
  { name: "session-recording", script: "session-recording.ts", args: ["--runs", "10"], quickArgs: ["--runs", "1", "--bytes", String(8 * 1024 ** 2)], reports: "json" },
  {
    name: "ssh-concurrency",
    script: "ssh-concurrency.ts",
    args: ["--sessions", "1000", "--hold", "60"],
    quickArgs: ["--sessions", "20", "--hold", "5"],
    reports: "json",
  },
  {
    name: "vnc-proxy",
    script: "vnc-proxy.ts",
    args: ["--mib", "256", "--rounds", "5", "--pings", "300", "--frames", "60"],
    quickArgs: ["--mib", "32", "--rounds", "1", "--pings", "30", "--frames", "5"],
    reports: "json",
  },
  { name: "sse-latency", script: "sse-latency.ts", args: ["--changes", "200"], quickArgs: ["--changes", "40"], reports: "json" },
  { name: "task-flood", script: "task-flood.ts", args: ["--runs", "5"], quickArgs: ["--runs", "1", "--requests", "300"], reports: "json" },
  // Creates with the egress checks configured (warm with WireGuard/shadowsocks bound, warm and cold
  // without) and egress tests, against the lab.
  // Starts two extra engines itself (test/lab/engines.sh); the first run copies the images (~80 s).
  { name: "engines", script: "engines.ts", args: ["10"], quickArgs: ["1"], reports: "json" },
  { name: "egress-create", script: "egress-create.ts", args: ["20"], quickArgs: ["3"], needs: "lab", reports: "json" },
  // The egress bench takes N first-byte runs (at least 10) as its only argument.
  { name: "egress", script: "egress.ts", args: ["20"], quickArgs: ["10"], needs: "lab", reports: "json" },
];
