import { spawn } from "node:child_process";
import Docker from "dockerode";
import { secretAt } from "../crypto/secrets.js";
import { engines as enginesTable } from "../db/schema/index.js";
import type { ApiHarness } from "./api-harness.js";
import { readFileSync } from "node:fs";
import { projectRoot } from "../paths.js";

/**
 * Extra Docker engines for multi-engine tests: a wrapper around test/lab/engines.sh (each engine a
 * real dockerd in its own network namespace, TCP with mutual TLS, a management subnet routed from
 * this machine). Address scheme, firewall and timings: test/lab/README.md "Extra Docker engines".
 */

export interface TestEngine {
  /** "eng1", "eng2", … */
  id: string;
  index: number;
  /** "tcp://198.19.250.<4n-2>:2376" */
  dockerHost: string;
  /** The engine's address on its veth (dockerd's TCP listener). */
  address: string;
  port: number;
  /** The root namespace's end of the engine's veth: the only source the engine admits. */
  controlPlaneAddress: string;
  /** PEMs for mutual TLS (the CA that signed the engine's server certificate; the client pair). */
  tls: { ca: string; cert: string; key: string };
  /** The same, as files. */
  tlsFiles: { ca: string; cert: string; key: string };
  /** The routed management subnet, and the network on the engine that uses it. */
  mgmt: { network: string; subnet: string; gateway: string };
  /** unix socket of the engine's dockerd, for debugging (`docker -H unix://…`). */
  socketPath: string;
  netns: string;
  log: string;
}

interface EnginesJson {
  version: number;
  stateDir: string;
  engines: {
    id: string;
    index: number;
    running: boolean;
    netns: string;
    address: string;
    controlPlaneAddress: string;
    dockerHost: string;
    socketPath: string;
    mgmt: { network: string; subnet: string; gateway: string };
    tls: { ca: string; cert: string; key: string };
    log: string;
  }[];
}

const SCRIPT = `${projectRoot}/test/lab/engines.sh`;

/** Run engines.sh; rejects with its output when it fails (e.g. this machine cannot run dockerd). */
function run(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [SCRIPT, ...args], { cwd: projectRoot, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += String(d)));
    child.stderr.on("data", (d) => (err += String(d)));
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`engines.sh ${args.join(" ")}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`engines.sh ${args.join(" ")} failed (${signal ?? `exit ${code}`}):\n${err.trim()}\n${out.trim()}`));
    });
  });
}

function toEngine(e: EnginesJson["engines"][number]): TestEngine {
  const port = Number(new URL(e.dockerHost.replace(/^tcp:/, "https:")).port);
  return {
    id: e.id,
    index: e.index,
    dockerHost: e.dockerHost,
    address: e.address,
    port,
    controlPlaneAddress: e.controlPlaneAddress,
    tls: { ca: readFileSync(e.tls.ca, "utf8"), cert: readFileSync(e.tls.cert, "utf8"), key: readFileSync(e.tls.key, "utf8") },
    tlsFiles: e.tls,
    mgmt: e.mgmt,
    socketPath: e.socketPath,
    netns: e.netns,
    log: e.log,
  };
}

export interface StartedEngines {
  engines: TestEngine[];
  /** Ids of the engines this call started (those that were not running before). */
  started: string[];
}

/**
 * Engines eng1..engN, started when not running (idempotent). `images` are copied from the main
 * engine when their image IDs differ (default: base, gateway and host; the host image is the slow
 * one). Throws with engines.sh's message when the machine cannot run them: callers must fail, not skip.
 */
export async function startEngines(
  count: number,
  opts: { images?: string[]; timeoutMs?: number } = {},
): Promise<StartedEngines> {
  const before = new Set((await engineStatus()).filter((e) => e.running).map((e) => e.id));
  const args = ["up", String(count)];
  if (opts.images) args.push("--images", opts.images.join(" "));
  const out = await run(args, opts.timeoutMs ?? 600_000);
  const json = JSON.parse(out) as EnginesJson;
  const engines = json.engines
    .filter((e) => e.index >= 1 && e.index <= count)
    .sort((a, b) => a.index - b.index)
    .map(toEngine);
  if (engines.length !== count) throw new Error(`engines.sh up ${count} reported ${engines.length} engines:\n${out}`);
  return { engines, started: engines.map((e) => e.id).filter((id) => !before.has(id)) };
}

/** Stop engines (all when `ids` is omitted). Data-roots are kept unless `purge`. */
export async function stopEngines(ids?: string[], opts: { purge?: boolean } = {}): Promise<void> {
  if (ids && ids.length === 0) return;
  await run(["down", ...(ids ?? []), ...(opts.purge ? ["--purge"] : [])], 180_000);
}

/** What engines.sh status reports (running or half set up); [] when engines.sh cannot run. */
export async function engineStatus(): Promise<{ id: string; running: boolean }[]> {
  try {
    const json = JSON.parse(await run(["status"], 60_000)) as EnginesJson;
    return json.engines.map((e) => ({ id: e.id, running: e.running }));
  } catch {
    return [];
  }
}

/** dockerode options for an engine over TCP with mutual TLS. */
export function dockerodeOptions(e: TestEngine): { host: string; port: number; protocol: "https"; ca: string; cert: string; key: string } {
  return { host: e.address, port: e.port, protocol: "https", ca: e.tls.ca, cert: e.tls.cert, key: e.tls.key };
}

/** Remove every container and volume a test run (its instance label) left on a lab engine. */
export async function removeInstanceFromEngine(e: TestEngine, instance: string): Promise<void> {
  const d = new Docker(dockerodeOptions(e));
  const label = { label: [`cloud-cli-proxy.instance=${instance}`] };
  for (const c of await d.listContainers({ all: true, filters: label }).catch(() => [])) await d.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {});
  const vols = await d.listVolumes({ filters: label }).catch(() => ({ Volumes: [] as { Name: string }[] }));
  for (const v of vols.Volumes ?? []) await d.getVolume(v.Name).remove().catch(() => {});
}

/** Add a lab engine's row (endpoint, TLS material, the client key encrypted for that row) to a test database. */
export async function registerTestEngine(h: ApiHarness, e: TestEngine): Promise<void> {
  await h.database.db.insert(enginesTable).values({
    id: e.id,
    endpoint: e.dockerHost,
    tlsCaPem: e.tls.ca,
    tlsCertPem: e.tls.cert,
    tlsKeyEnc: h.deps.secrets.encrypt(e.tls.key, secretAt.engine(e.id)),
  });
}
