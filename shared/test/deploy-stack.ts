/**
 * What the deploy-path suites (test/e2e/compose.test.ts, test/e2e/systemd.test.ts) share: running
 * commands to completion, the API over plain fetch, waiting for a task, and the real OpenSSH
 * client through an installed sshd with a password from an askpass program. Each suite owns its
 * stack; this module only talks to it at the addresses it is given.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../paths.js";
import { waitUntil } from "./processes.js";

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Killed (SIGKILL) after this long; 60 s unless given. */
  timeoutMs?: number;
  stdin?: string;
}

/** Runs a command (argv, no shell) from the repository root to completion. */
export function run(cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: projectRoot, env: o.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += String(d)));
    child.stderr.on("data", (d) => (stderr += String(d)));
    child.stdin.on("error", () => {});
    child.stdin.end(o.stdin ?? "");
    const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like run, but a non-zero exit throws with the tail of both streams; resolves to stdout. */
export async function must(cmd: string, args: string[], o: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, o);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

export interface ApiReply {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
}

/** The HTTP API of a deployed stack at `baseUrl`, JSON in and out. */
export function apiClient(baseUrl: () => string) {
  const api = async (method: string, path: string, token?: string, body?: unknown): Promise<ApiReply> => {
    const res = await fetch(`${baseUrl()}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, body: json, text };
  };

  /**
   * Waits for a task to end and resolves to its final status. A failure's code and message go to
   * the log, for whoever reads a red run: the status is what the caller asserts.
   */
  const waitForTask = (token: string, taskId: string, timeoutMs = 180_000): Promise<string> =>
    waitUntil(`task ${taskId}`, timeoutMs, async () => {
      const t = (await api("GET", `/v1/admin/tasks/${taskId}`, token)).body?.task;
      if (!t || !["succeeded", "failed", "canceled"].includes(t.status)) return undefined;
      if (t.status !== "succeeded") console.error(`task ${taskId} ${t.status}: ${t.error_code} ${t.error_message}`);
      return t.status as string;
    });

  return { api, waitForTask };
}

/**
 * The real OpenSSH client against an sshd at 127.0.0.1:`port()`, password authentication through
 * an askpass program written into `dir`, and the host key checked strictly against
 * `dir`/known_hosts (write it with `pinProxyHostKey`).
 */
export function sshClient(dir: string, port: () => number) {
  writeFileSync(join(dir, "askpass"), '#!/bin/sh\nprintf "%s\\n" "$CCP_TEST_SECRET"\n');
  chmodSync(join(dir, "askpass"), 0o700);

  const pinProxyHostKey = (publicKey: string) =>
    writeFileSync(join(dir, "known_hosts"), `[127.0.0.1]:${port()} ${publicKey.trim()}\n`);

  const ssh = (login: string, password: string, command: string): Promise<RunResult> => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      SSH_ASKPASS: join(dir, "askpass"),
      SSH_ASKPASS_REQUIRE: "force",
      DISPLAY: ":0",
      CCP_TEST_SECRET: password,
    };
    delete env.SSH_AUTH_SOCK;
    return run(
      "ssh",
      [
        "-p", String(port()),
        "-F", "/dev/null",
        "-o", `UserKnownHostsFile=${join(dir, "known_hosts")}`,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=no",
        "-o", "ConnectTimeout=10",
        "-o", "LogLevel=ERROR",
        "-o", "PubkeyAuthentication=no",
        "-o", "PreferredAuthentications=password",
        "-o", "NumberOfPasswordPrompts=1",
        `${login}@127.0.0.1`,
        command,
      ],
      { env, timeoutMs: 60_000 },
    );
  };

  return { ssh, pinProxyHostKey };
}

/**
 * The environment lines every deployed stack of a suite shares: fresh secrets, this run's
 * loopback ports, Redis prefix and networks, fast heartbeats and stops, no warm pool (its members
 * would outlive the host a suite deletes, docs/architecture.md#warm-pool) and generous readiness
 * deadlines (a loaded CI machine can be slower than the defaults; the deadlines are not what these
 * suites prove). A suite adds its own lines.
 */
export function stackEnvLines(o: {
  adminPassword: string;
  ports: { api: number; ssh: number };
  prefix: string;
  mgmtNetwork: string;
  underlayNetwork: string;
}): string[] {
  return [
    `SECRETS_KEY=v1:${randomBytes(32).toString("base64")}`,
    "ADMIN_USERNAME=admin",
    `ADMIN_PASSWORD=${o.adminPassword}`,
    `ADMIN_JWT_SECRET=${randomBytes(32).toString("hex")}`,
    `PUBLIC_BASE_URL=http://127.0.0.1:${o.ports.api}`,
    `API_LISTEN_ADDR=127.0.0.1:${o.ports.api}`,
    `SSH_LISTEN_ADDR=127.0.0.1:${o.ports.ssh}`,
    `REDIS_PREFIX=${o.prefix}`,
    `MGMT_NETWORK=${o.mgmtNetwork}`,
    `EGRESS_UNDERLAY_NETWORK=${o.underlayNetwork}`,
    "HOST_POOL_SIZE=0",
    // No spare egress-test gateway either: the suites count what is left after uninstalling.
    "EGRESS_TEST_SPARE=false",
    "HEARTBEAT_INTERVAL_SECONDS=1",
    "CONTAINER_STOP_GRACE_SECONDS=1",
    "GATEWAY_READY_TIMEOUT_SECONDS=90",
    "SSH_READY_TIMEOUT_SECONDS=90",
    "LOG_LEVEL=info",
  ];
}

/** Best-effort removal of a suite's Docker networks (cleanup runs on failure too). */
export function removeNetworks(names: string[]): void {
  for (const n of names) {
    try {
      execFileSync("docker", ["network", "rm", n], { stdio: "ignore" });
    } catch {
      // not created, or already gone
    }
  }
}
