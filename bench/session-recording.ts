/**
 * What SSH session recording costs an interactive session (docs/sessions.md#recording): the
 * throughput of one stream through the proxy on a pty (`ssh -tt host 'yes … | head -c N'`,
 * counted by a local `wc -c`) with the host's recording policy `off` and `output`, alternating
 * runs in the same stack, so the ratio compares like with like. The proxy runs with
 * SESSION_RECORDING_MAX_BYTES above the stream's size, so every byte is recorded (the worst
 * case; at the default 16 MiB the recording stops early and costs nothing after that).
 *
 * Printed per run: seconds, MiB/s, and for recorded runs the stored size, whether it was
 * truncated (the store fell behind: the recorder drops rather than slow the session) and how long
 * after the session's end the recording was complete in Postgres.
 *
 *   npx tsx bench/session-recording.ts [--runs 10] [--bytes 33554432]
 */
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { benchRow, writeBenchResult } from "./lib/report.js";
import { type BenchHost, type BenchStack, median, mib, proxyArgv, sshEnv, startBenchStack } from "./lib/stack.js";
import { AsciicastRecorder } from "../shared/services/sessions/recorder.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "10" },
    bytes: { type: "string", default: String(32 * 1024 ** 2) },
  },
});
const RUNS = Number(values.runs);
const BYTES = Number(values.bytes);

/** ssh -tt with stdout into `wc -c`: seconds until wc saw EOF, and the bytes it counted. */
function stream(argv: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const wc = spawn("wc", ["-c"], { stdio: ["pipe", "pipe", "inherit"] });
    let count = "";
    wc.stdout.on("data", (d: Buffer) => (count += d.toString()));
    const t0 = process.hrtime.bigint();
    const ssh = spawn("ssh", argv, { env, stdio: ["ignore", wc.stdin, "pipe"] });
    wc.stdin.destroy(); // ssh holds its own copy
    let err = "";
    ssh.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const sshDone = new Promise<void>((ok, fail) => ssh.on("close", (code) => (code === 0 ? ok() : fail(new Error(`ssh exited ${code}: ${err}`)))));
    sshDone.catch(reject);
    wc.on("close", () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      void sshDone.then(() => resolve({ seconds, bytes: Number(count.trim()) }));
    });
  });
}

async function setPolicy(stack: BenchStack, host: BenchHost, mode: "off" | "output") {
  const res = await stack.request("PUT", `/v1/admin/hosts/${host.id}/session-recording`, { token: stack.adminToken, body: { session_recording: mode } });
  if (res.status !== 200) throw new Error(`policy: ${res.status} ${JSON.stringify(res.body)}`);
}

/** The newest session of the host once closed, and ms from `t0` until it was. */
async function closedSession(stack: BenchStack, host: BenchHost, t0: number) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const res = await stack.request("GET", `/v1/admin/sessions?host_id=${host.id}&limit=1`, { token: stack.adminToken });
    const s = res.body.sessions?.[0] as { id: string; open: boolean; recording_bytes: number; recording_truncated: boolean } | undefined;
    if (s && !s.open) return { ...s, lagMs: Date.now() - t0 };
    if (Date.now() > deadline) throw new Error("the session row was not closed within 120 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The recorder's own cost on the relay's thread, without the network or Postgres: MiB/s of pty
 * output (32 KiB reads, as ssh2 delivers them) it turns into asciicast lines, sink a no-op.
 */
async function recorderAlone(): Promise<number> {
  const line = Buffer.from("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ünï €\r\n");
  const chunk = Buffer.concat(Array.from({ length: Math.ceil(32768 / line.length) }, () => line)).subarray(0, 32768);
  const rates: number[] = [];
  for (let run = 0; run < 5; run++) {
    const r = new AsciicastRecorder({ mode: "output", width: 80, height: 24, maxBytes: 2 ** 40, maxPendingBytes: 2 ** 40, sink: async () => {} });
    const n = Math.ceil(BYTES / chunk.length);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) r.output(chunk);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await r.close();
    rates.push(mib(n * chunk.length) / seconds);
  }
  return median(rates);
}

async function main() {
  let stack: BenchStack | undefined;
  const alone = await recorderAlone();
  console.log(`recorder alone (no network, no Postgres): ${alone.toFixed(0)} MiB/s of pty output on one core`);
  try {
    stack = await startBenchStack({ sshdEnv: { SESSION_RECORDING_MAX_BYTES: String(Math.min(1024 ** 3, BYTES * 4)) } });
    const host = await stack.createHost();
    const env = sshEnv(stack);
    // Printable lines, as a terminal shows them: the pty turns each \n into \r\n.
    const argv = proxyArgv(stack, host, "publickey", ["-tt", `yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c ${BYTES}`]);
    console.log(`pty stream of ${BYTES} bytes (${mib(BYTES).toFixed(0)} MiB) through the proxy, ${RUNS} runs each, alternating recording off/output`);
    // Warm-up: not counted.
    await setPolicy(stack, host, "off");
    await stream(argv, env);
    const rates: Record<"off" | "output", number[]> = { off: [], output: [] };
    const lags: number[] = [];
    let truncated = 0;
    for (let i = 0; i < RUNS; i++) {
      for (const mode of ["off", "output"] as const) {
        await setPolicy(stack, host, mode);
        const r = await stream(argv, env);
        const s = await closedSession(stack, host, Date.now());
        const rate = mib(r.bytes) / r.seconds;
        rates[mode].push(rate);
        let note = "";
        if (mode === "output") {
          lags.push(s.lagMs);
          if (s.recording_truncated) truncated++;
          note = `; recorded ${mib(s.recording_bytes).toFixed(1)} MiB${s.recording_truncated ? " (truncated)" : ""}, complete ${s.lagMs} ms after the session ended`;
        }
        console.log(`  run ${i + 1} ${mode.padEnd(6)} ${r.seconds.toFixed(2)} s  ${rate.toFixed(1)} MiB/s (${mib(r.bytes).toFixed(1)} MiB received)${note}`);
      }
    }
    const off = median(rates.off);
    const on = median(rates.output);
    console.log(`medians over ${RUNS} runs each: recording off ${off.toFixed(1)} MiB/s, output ${on.toFixed(1)} MiB/s, ratio ${(on / off).toFixed(3)}`);
    console.log(`recording complete in Postgres after the session ended: median ${median(lags).toFixed(0)} ms; truncated runs: ${truncated}/${RUNS}`);
    writeBenchResult("session-recording", [
      benchRow({
        path: `SSH pty stream with recording (output), ${mib(BYTES).toFixed(0)} MiB`,
        unit: "MiB/s",
        ours: on,
        baseline: off,
        baselineLabel: "recording off",
        target: { of: "ratio", op: ">=", value: 0.8, text: "≥ 0.8× off" },
        note: `${truncated}/${RUNS} recordings truncated`,
      }),
      benchRow({ path: "asciicast recorder alone, pty output → lines (one core)", unit: "MiB/s", ours: alone, note: "no network, no Postgres" }),
    ]);
  } finally {
    await stack?.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
