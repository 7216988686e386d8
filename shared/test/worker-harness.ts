import { execFileSync } from "node:child_process";
import { Writable } from "node:stream";
import { startWorker } from "../../worker/main.js";
import type { WorkerDeps } from "../../worker/deps.js";
import { parseWorkerConfig, type WorkerConfig } from "../config/worker.js";
import { createLogger } from "../logger.js";
import type { ApiHarness } from "./api-harness.js";

/** Networks the tests' workers use; the underlay is --internal so no packet can leave the machine. */
export const TEST_MGMT_NETWORK = "ccp-test-mgmt";
export const TEST_UNDERLAY_NETWORK = "ccp-test-underlay";

export function docker(args: string[]): string {
  return execFileSync("docker", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

export function ensureTestNetworks(): void {
  const exists = (n: string) => {
    try {
      docker(["network", "inspect", n]);
      return true;
    } catch {
      return false;
    }
  };
  const create = (n: string, internal: boolean) => {
    if (exists(n)) return;
    try {
      docker([
        "network", "create", "--driver", "bridge",
        ...(internal ? ["--internal"] : []),
        "-o", "com.docker.network.bridge.enable_icc=false",
        "--label", "cloud-cli-proxy.test=true", n,
      ]);
    } catch (err) {
      if (!exists(n)) throw err; // another test file created it at the same time
    }
  };
  create(TEST_MGMT_NETWORK, false);
  create(TEST_UNDERLAY_NETWORK, true);
}

export interface WorkerHarness {
  deps: WorkerDeps;
  config: WorkerConfig;
  logs: string[];
  stop(): Promise<void>;
}

/**
 * A real worker (BullMQ consumers, schedulers, Docker runtime) on the API harness's database and
 * Redis prefix. Scheduler intervals default to an hour so tests trigger them explicitly.
 */
export async function startTestWorker(h: ApiHarness, overrides: Record<string, string> = {}): Promise<WorkerHarness> {
  ensureTestNetworks();
  const config = parseWorkerConfig({
    ...h.env,
    MGMT_NETWORK: TEST_MGMT_NETWORK,
    EGRESS_UNDERLAY_NETWORK: TEST_UNDERLAY_NETWORK,
    HEARTBEAT_INTERVAL_SECONDS: "1",
    RECONCILE_INTERVAL_SECONDS: "3600",
    EXPIRY_SCAN_INTERVAL_SECONDS: "3600",
    SWEEP_INTERVAL_SECONDS: "3600",
    CONTAINER_STOP_GRACE_SECONDS: "1",
    WORKER_CONCURRENCY: "4",
    ...overrides,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const logger = createLogger({ level: "debug" }, sink);
  const w = await startWorker(config, logger, { database: h.database });
  return { deps: w.deps, config, logs, stop: w.stop };
}

/** Remove every container and volume this test run's instance created. */
export function removeInstanceObjects(instance: string): void {
  const label = `cloud-cli-proxy.instance=${instance}`;
  const ids = docker(["ps", "-aq", "--filter", `label=${label}`]).split("\n").filter(Boolean);
  if (ids.length) docker(["rm", "-f", "-v", ...ids]);
  const vols = docker(["volume", "ls", "-q", "--filter", `label=${label}`]).split("\n").filter(Boolean);
  if (vols.length) docker(["volume", "rm", "-f", ...vols]);
}

export function instanceObjects(instance: string): { containers: string[]; volumes: string[] } {
  const label = `cloud-cli-proxy.instance=${instance}`;
  return {
    containers: docker(["ps", "-a", "--format", "{{.Names}}", "--filter", `label=${label}`]).split("\n").filter(Boolean).sort(),
    volumes: docker(["volume", "ls", "-q", "--filter", `label=${label}`]).split("\n").filter(Boolean).sort(),
  };
}

/** Poll a task until it is terminal (bounded); returns the task object. */
export async function waitForTask(h: ApiHarness, taskId: string, timeoutMs = 120_000) {
  const token = await h.adminToken();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await h.request("GET", `/v1/admin/tasks/${taskId}`, { token });
    const t = res.body?.task;
    if (t && ["succeeded", "failed", "canceled"].includes(t.status)) return t;
    if (Date.now() > deadline) throw new Error(`task ${taskId} did not finish: ${res.text}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
