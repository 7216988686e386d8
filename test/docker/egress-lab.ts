import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import type { ApiHarness } from "../../shared/test/api-harness.js";
import { docker, waitForTask } from "../../shared/test/worker-harness.js";

/**
 * The test lab (docs/egress.md#lab, test/lab/) for the egress suites: started (idempotent, well
 * under a second when it already runs) and described by its lab.json. Every egress setting of the
 * worker under test points at the lab; nothing here talks to an outside address.
 */

const STATE = process.env.CCP_LAB_STATE ?? "/tmp/ccp-lab";

export interface LabEgress {
  address: string;
  exit_ip: string;
  udp: "proxied" | "blocked";
  container: string;
  egress: Record<string, unknown>;
}

export interface Lab {
  env: Record<string, string>;
  networks: { inet: { name: string; gateway: string }; mgmt: { name: string; gateway: string; subnet: string } };
  echo: { address: string; udp_port: number };
  dns: { address: string; api: string; api_secret: string; domain: string };
  resolver: { address: string };
  wireguard: LabEgress & { public_key: string; client_public_key: string };
  proxies: Record<"shadowsocks" | "vmess" | "trojan" | "socks" | "socks_udp" | "http", LabEgress>;
}

export function labUp(): Lab {
  execFileSync("bash", ["test/lab/up.sh"], { stdio: ["ignore", "pipe", "pipe"], timeout: 300_000 });
  return JSON.parse(readFileSync(`${STATE}/lab.json`, "utf8")) as Lab;
}

/** Worker settings for the lab (lab.json's env), plus short scheduler intervals off. */
export function labWorkerEnv(lab: Lab): Record<string, string> {
  return { ...lab.env };
}

export async function createEgress(h: ApiHarness, body: Record<string, unknown>): Promise<string> {
  const res = await h.request("POST", "/v1/admin/egress-ips", { token: await h.adminToken(), body });
  if (res.status !== 201) throw new Error(`create egress failed: ${res.status} ${res.text}`);
  return res.body.egress_ip.id as string;
}

/** Bind; returns the binding id and the apply task (when the host is live). */
export async function bind(h: ApiHarness, hostId: string, egressId: string): Promise<{ bindingId: string; taskId: string | null }> {
  const res = await h.request("POST", "/v1/admin/bindings", { token: await h.adminToken(), body: { host_id: hostId, egress_ip_id: egressId } });
  if (res.status !== 201) throw new Error(`bind failed: ${res.status} ${res.text}`);
  return { bindingId: res.body.binding.id as string, taskId: (res.body.task_id as string | undefined) ?? null };
}

export async function unbind(h: ApiHarness, bindingId: string): Promise<void> {
  const res = await h.request("DELETE", `/v1/admin/bindings/${bindingId}`, { token: await h.adminToken() });
  if (res.status !== 204) throw new Error(`unbind failed: ${res.status} ${res.text}`);
}

/** A user and a running host (the create task waited for). */
export async function createRunningHost(h: ApiHarness): Promise<{ hostId: string; task: { status: string; steps: { name: string; status: string }[] } }> {
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: await h.adminToken(), body: { user_id: u.id } });
  if (res.status !== 202) throw new Error(`create host failed: ${res.status} ${res.text}`);
  const task = await waitForTask(h, res.body.task_id);
  return { hostId: res.body.host.id as string, task };
}

export const gatewayOf = (hostId: string) => `ccp-gw-${hostId}`;
export const hostOf = (hostId: string) => `ccp-host-${hostId}`;

export function underlayIp(container: string, network: string): string {
  return docker(["inspect", "-f", `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);
}

/** Run a command in a container; never throws (exit code and output returned). */
export function execIn(container: string, argv: string[], opts: { user?: string; timeoutMs?: number } = {}) {
  const r = spawnSync("docker", ["exec", ...(opts.user ? ["-u", opts.user] : []), container, ...argv], {
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 30_000,
  });
  return { code: r.status ?? -1, stdout: (r.stdout ?? "").trim(), stderr: (r.stderr ?? "").trim() };
}

export function gatewayStatus(hostOrGateway: string) {
  return JSON.parse(docker(["exec", hostOrGateway, "ccp-gateway", "status"])) as {
    generation: number;
    mode: string;
    status: string;
    engine: string;
    engine_restarts: number;
    ruleset_restores: number;
    error: string | null;
  };
}

/** The canary's sources for a name: checkd's query API, as the worker reads it (the lab is up). */
export async function canary(lab: Lab, name: string): Promise<string[]> {
  const res = await fetch(`${lab.dns.api}/v1/canary/${encodeURIComponent(name)}`, {
    headers: { authorization: `Bearer ${lab.dns.api_secret}` },
  });
  if (res.status !== 200) throw new Error(`canary API answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { sources: string[] }).sources;
}

/** Leak sentinel (test/lab/sentinel.sh): lines from these sources in the echo/canary/resolver logs. */
export function sentinel(since: Date, ...addresses: string[]): { leak: boolean; lines: string } {
  const r = spawnSync("bash", ["test/lab/sentinel.sh", "--since", since.toISOString(), ...addresses], { encoding: "utf8" });
  if (r.status !== 0 && r.status !== 1) throw new Error(`sentinel failed: ${r.stderr}`);
  return { leak: r.status === 1, lines: r.stdout };
}

export function sshBanner(ip: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(22, ip);
    s.setTimeout(5000, () => s.destroy(new Error("timeout")));
    s.once("data", (d) => {
      s.destroy();
      resolve(String(d).split("\r\n")[0]!);
    });
    s.on("error", reject);
  });
}

export async function until<T>(fn: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs: number, stepMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function randomLabel(): string {
  return Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
}
