/**
 * Throughput of one 1 GiB stream through the SSH proxy vs direct `ssh` to the host's sshd
 * (internal key, pinned host key), the baseline measured in the same run; both directions:
 * host → client (`head -c 1073741824 /dev/zero` on the host, counted by a local `wc -c` fed
 * straight from ssh's stdout) and client → host (a local `head -c` feeding ssh's stdin, counted
 * by `wc -c` on the host). Runs alternate (proxy, direct, …), 20 of each (issue 12: medians over
 * ≥ 20 runs); the figures are medians. This process's event loop (which also runs the API and
 * worker, idle here) is not in the data path; the proxy runs in a process of its own.
 *
 * Cost, next to speed: the proxy process's CPU seconds per GiB relayed (from /proc), and as the
 * same-run baseline the OpenSSH client's own CPU seconds per GiB on the direct runs (exact: the
 * client runs under a shell whose `times` reports it). The proxy decrypts and re-encrypts every
 * byte, so it is two SSH endpoints' work; bench/ssh-crypto.ts prints the part of it that is
 * ssh2's ciphers alone. On a machine whose cores are all busy (client, host sshd, proxy) the
 * throughput ratio is bounded by that CPU, whatever the relay does.
 *
 *   npx tsx bench/ssh-throughput.ts [--runs 20] [--bytes 1073741824] [--cipher …]
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { benchRow, type BenchRow, writeBenchResult } from "./lib/report.js";
import { type BenchHost, type BenchStack, directArgv, median, mib, proxyArgv, sshEnv, startBenchStack } from "./lib/stack.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "20" },
    bytes: { type: "string", default: String(1024 ** 3) },
    /** Force the client's cipher on both paths (e.g. aes128-gcm@openssh.com); default: OpenSSH's choice. */
    cipher: { type: "string" },
  },
});
const RUNS = Number(values.runs);
const BYTES = Number(values.bytes);
const CIPHER = values.cipher ? ["-c", values.cipher] : [];
const gib = BYTES / 1024 ** 3;

interface Run {
  seconds: number;
  bytes: number;
  /** CPU seconds (user + system) of the ssh client process. */
  sshCpu: number;
}

/**
 * ssh under `bash -c`, which prints its children's CPU times (`times`, second line) to stderr
 * after ssh exits: the client's exact CPU use, with nothing sampled.
 */
function spawnSsh(argv: string[], env: NodeJS.ProcessEnv, stdio: import("node:child_process").StdioOptions) {
  return spawn("bash", ["-c", 'ssh "$@"; rc=$?; times >&2; exit $rc', "ssh", ...CIPHER, ...argv], { env, stdio });
}

/** Split what the wrapper wrote to stderr into ssh's own messages and the client's CPU seconds. */
function splitTimes(stderr: string): { err: string; cpu: number } {
  const lines = stderr.trimEnd().split("\n");
  const children = lines.pop() ?? "";
  lines.pop(); // the shell's own times
  const secs = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return { err: lines.join("\n"), cpu: secs.length === 2 ? secs[0]! + secs[1]! : Number.NaN };
}

/** Run ssh with stdout piped into `wc -c`; returns seconds and the byte count wc saw. */
function stream(argv: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const wc = spawn("wc", ["-c"], { stdio: ["pipe", "pipe", "inherit"] });
    let count = "";
    wc.stdout.on("data", (d: Buffer) => (count += d.toString()));
    const t0 = process.hrtime.bigint();
    const ssh = spawnSsh(argv, env, ["ignore", wc.stdin, "pipe"]);
    // ssh has its own copy of the pipe; ours must go, or wc never sees EOF.
    wc.stdin.destroy();
    let err = "";
    ssh.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const sshDone = new Promise<number>((ok, fail) =>
      ssh.on("close", (code) => {
        const t = splitTimes(err);
        if (code !== 0) fail(new Error(`ssh exited ${code}: ${t.err.trim()}`));
        else ok(t.cpu);
      }),
    );
    sshDone.catch(reject);
    wc.on("close", () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      void sshDone.then((sshCpu) => resolve({ seconds, bytes: Number(count.trim()), sshCpu }));
    });
  });
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux; 0 elsewhere). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}

/** Feed ssh's stdin from `head -c bytes /dev/zero`; the host counts with `wc -c`. */
function upload(argv: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const head = spawn("head", ["-c", String(BYTES), "/dev/zero"], { stdio: ["ignore", "pipe", "inherit"] });
    const t0 = process.hrtime.bigint();
    const ssh = spawnSsh(argv, env, [head.stdout, "pipe", "pipe"]);
    head.stdout.destroy(); // ssh holds its own copy
    let out = "";
    let err = "";
    ssh.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    ssh.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    ssh.on("close", (code) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const t = splitTimes(err);
      if (code !== 0) reject(new Error(`ssh exited ${code}: ${t.err.trim()}`));
      else resolve({ seconds, bytes: Number(out.trim()), sshCpu: t.cpu });
    });
  });
}

async function cipherOf(argv: string[], env: NodeJS.ProcessEnv): Promise<string> {
  // -v prints "kex: server->client cipher: … MAC: …"; the data path is what matters here.
  const withV = ["-v", ...CIPHER, ...argv];
  return new Promise((resolve) => {
    const p = spawn("ssh", withV, { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("close", () => resolve(/kex: server->client cipher: (\S+)/.exec(err)?.[1] ?? "?"));
  });
}

async function main() {
  let stack: BenchStack | undefined;
  try {
    stack = await startBenchStack();
    const host: BenchHost = await stack.createHost();
    const env = sshEnv(stack);
    const down = [`head -c ${BYTES} /dev/zero`];
    const up = ["wc -c"];
    console.log(`stream of ${BYTES} bytes (${mib(BYTES).toFixed(0)} MiB), ${RUNS} runs each per direction, alternating proxy/direct`);
    const pArgv = proxyArgv(stack, host, "publickey", ["true"]);
    console.log(`ciphers (client leg): proxy ${await cipherOf(pArgv, env)}, direct ${await cipherOf(directArgv(host, ["true"]), env)}`);
    // Warm-up (page cache, JIT, container): not counted.
    await stream(proxyArgv(stack, host, "publickey", ["head -c 67108864 /dev/zero"]), env);
    await stream(directArgv(host, ["head -c 67108864 /dev/zero"]), env);

    const summary: string[] = [];
    const rows: BenchRow[] = [];
    for (const [direction, run, command] of [
      ["host → client", stream, down],
      ["client → host", upload, up],
    ] as const) {
      console.log(direction);
      const rates: Record<"proxy" | "direct", number[]> = { proxy: [], direct: [] };
      const proxyCpu: number[] = []; // proxy process, CPU-s per GiB
      const clientCpu: Record<"proxy" | "direct", number[]> = { proxy: [], direct: [] }; // ssh client, CPU-s per GiB
      for (let i = 0; i < RUNS; i++) {
        for (const name of ["proxy", "direct"] as const) {
          const argv = name === "proxy" ? proxyArgv(stack, host, "publickey", command) : directArgv(host, command);
          const cpu0 = cpuSeconds(stack.proxy.pid);
          const r = await run(argv, env);
          const cpu = cpuSeconds(stack.proxy.pid) - cpu0;
          if (r.bytes !== BYTES) throw new Error(`${name}: ${r.bytes} bytes arrived, expected ${BYTES}`);
          const rate = mib(r.bytes) / r.seconds;
          rates[name].push(rate);
          clientCpu[name].push(r.sshCpu / gib);
          if (name === "proxy") proxyCpu.push(cpu / gib);
          const note = name === "proxy" ? `; proxy process ${(cpu / gib).toFixed(2)} CPU-s/GiB, ${((cpu / r.seconds) * 100).toFixed(0)} % of a core` : "";
          console.log(`  run ${i + 1} ${name.padEnd(6)} ${r.seconds.toFixed(2)} s  ${rate.toFixed(1)} MiB/s  (ssh client ${(r.sshCpu / gib).toFixed(2)} CPU-s/GiB${note})`);
        }
      }
      const p = median(rates.proxy);
      const d = median(rates.direct);
      rows.push(benchRow({ path: `SSH proxy throughput, ${direction}, ${mib(BYTES).toFixed(0)} MiB`, unit: "MiB/s", ours: p, baseline: d, baselineLabel: "direct ssh", target: { of: "ratio", op: ">=", value: 0.95, text: "≥ 0.95× direct" } }));
      summary.push(
        `${direction}: median proxy ${p.toFixed(1)} MiB/s, direct ${d.toFixed(1)} MiB/s, ratio ${(p / d).toFixed(3)}; ` +
          `CPU-s/GiB: proxy process ${median(proxyCpu).toFixed(2)}, direct ssh client ${median(clientCpu.direct).toFixed(2)} ` +
          `(ssh client through the proxy ${median(clientCpu.proxy).toFixed(2)})`,
      );
    }
    console.log(`medians over ${RUNS} runs each:`);
    for (const line of summary) console.log(line);
    console.log("target: ratio ≥ 0.95 (issue 12)");
    writeBenchResult("ssh-throughput", rows);
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
