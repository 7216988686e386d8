import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { startSshd } from "../../sshd/main.js";
import type { SshdDeps } from "../../sshd/server.js";
import { parseSshdConfig } from "../config/sshd.js";
import { createLogger } from "../logger.js";
import type { ApiHarness } from "./api-harness.js";

export interface SshdHarness {
  port: number;
  hostKey: string;
  deps: SshdDeps;
  logs: string[];
  /** The port of SSHD_METRICS_LISTEN_ADDR when the overrides set it. */
  metricsPort: number | null;
  /** A scratch dir with a known_hosts pinning the proxy and an askpass helper. */
  dir: string;
  knownHosts: string;
  stop(): Promise<void>;
}

/** The real SSH proxy, in-process, on a free loopback port, sharing the harness's database and Redis prefix. */
export async function startTestSshd(h: ApiHarness, overrides: Record<string, string> = {}): Promise<SshdHarness> {
  const config = parseSshdConfig({ ...h.env, SSH_LISTEN_ADDR: "127.0.0.1:0", ...overrides });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const s = await startSshd(config, createLogger({ level: "debug" }, sink), { database: h.database });
  const dir = mkdtempSync(join(tmpdir(), "ccp-ssh-"));
  const knownHosts = join(dir, "known_hosts");
  writeFileSync(knownHosts, `[127.0.0.1]:${s.port} ${s.hostKey}\n`);
  // The secret reaches ssh through SSH_ASKPASS from the environment, never argv.
  writeFileSync(join(dir, "askpass"), '#!/bin/sh\nprintf "%s\\n" "$CCP_TEST_SECRET"\n');
  chmodSync(join(dir, "askpass"), 0o700);
  return {
    port: s.port,
    hostKey: s.hostKey,
    deps: s.deps,
    logs,
    metricsPort: s.metricsPort,
    dir,
    knownHosts,
    stop: async () => {
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface SshOptions {
  login: string;
  password?: string;
  identity?: string;
  args?: string[];
  stdin?: string | Buffer;
  knownHosts?: string;
  timeoutMs?: number;
}

/** Base argv of the real OpenSSH client against the test proxy. */
export function sshArgs(s: SshdHarness, o: SshOptions): string[] {
  return [
    "-p", String(s.port),
    "-o", `UserKnownHostsFile=${o.knownHosts ?? s.knownHosts}`,
    "-o", "StrictHostKeyChecking=yes",
    "-o", "BatchMode=" + (o.password ? "no" : "yes"),
    "-o", "ConnectTimeout=10",
    "-o", "LogLevel=ERROR",
    ...(o.identity
      ? ["-o", "IdentitiesOnly=yes", "-i", o.identity, "-o", "PreferredAuthentications=publickey"]
      : ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1"]),
  ];
}

export function sshEnv(s: SshdHarness, o: SshOptions): NodeJS.ProcessEnv {
  return {
    ...process.env,
    SSH_ASKPASS: join(s.dir, "askpass"),
    SSH_ASKPASS_REQUIRE: "force",
    DISPLAY: ":0",
    CCP_TEST_SECRET: o.password ?? "",
  };
}

/** Run `ssh … login@127.0.0.1 <args>`; resolves with exit code, stdout and stderr. */
export function ssh(s: SshdHarness, o: SshOptions): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("ssh", [...sshArgs(s, o), `${o.login}@127.0.0.1`, ...(o.args ?? [])], {
      env: sshEnv(s, o),
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
    });
    if (o.stdin !== undefined) child.stdin.end(o.stdin);
    else child.stdin.end();
  });
}

