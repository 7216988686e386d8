import { execFileSync } from "node:child_process";
import { Writable } from "node:stream";
import { startWorker } from "../../worker/main.js";
import type { WorkerDeps } from "../../worker/deps.js";
import type { PoolKeeper } from "../../worker/pool/keeper.js";
import { DISK_AGENT_NAME, diskAgentArgv, diskDirOf } from "../../worker/hosts/disk.js";
import { probeSsh } from "../../worker/hosts/ssh-ready.js";
import type { Redis } from "ioredis";
import { createDockerRuntime } from "../../worker/runtime/docker/docker-runtime.js";
import { HostLocks } from "../../worker/tasks/host-lock.js";
import { createWorkerMetrics } from "../../worker/metrics.js";
import { createMetricsRegistry } from "../metrics/registry.js";
import { parseWorkerConfig, type WorkerConfig } from "../config/worker.js";
import { createSecretBox } from "../crypto/secrets.js";
import { createLogger } from "../logger.js";
import { createEnqueuer } from "../queue/enqueuer.js";
import { createHostWaker } from "../queue/wake.js";
import { createLiveNotifier } from "../services/live/notify.js";
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
  /** The warm-pool keeper (HOST_POOL_SIZE, 0 unless the overrides set it). */
  pool: PoolKeeper;
  config: WorkerConfig;
  logs: string[];
  /** The port of WORKER_METRICS_LISTEN_ADDR when the overrides set it. */
  metricsPort: number | null;
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
    IDLE_SCAN_INTERVAL_SECONDS: "3600",
    CONTAINER_STOP_GRACE_SECONDS: "1",
    WORKER_CONCURRENCY: "4",
    HOST_POOL_SIZE: "0",
    EGRESS_TEST_SPARE: "false",
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
  return { deps: w.deps, pool: w.pool, config, logs, metricsPort: w.metricsPort, stop: w.stop };
}

/** Remove every container and volume this test run's instance created, and the homes' disks. */
export function removeInstanceObjects(instance: string): void {
  const label = `cloud-cli-proxy.instance=${instance}`;
  const ids = docker(["ps", "-aq", "--filter", `label=${label}`]).split("\n").filter(Boolean);
  if (ids.length) docker(["rm", "-f", "-v", ...ids]);
  const vols = docker(["volume", "ls", "-q", "--filter", `label=${label}`]).split("\n").filter(Boolean);
  const disks = vols.flatMap((v) => {
    const [info] = JSON.parse(docker(["volume", "inspect", v])) as { Labels?: Record<string, string>; Options?: Record<string, string> }[];
    const hostId = info?.Labels?.["cloud-cli-proxy.host_id"];
    const dir = hostId ? diskDirOf({ options: info?.Options ?? {} }, hostId) : null;
    return hostId && dir ? [{ dir, hostId }] : [];
  });
  if (vols.length) docker(["volume", "rm", "-f", ...vols]);
  // A bind volume's removal leaves its filesystem mounted on the machine: unmount and delete it.
  if (!disks.length) return;
  const pid = Number(docker(["inspect", "-f", "{{.State.Pid}}", DISK_AGENT_NAME]));
  for (const d of disks) docker(["exec", DISK_AGENT_NAME, ...diskAgentArgv(pid, "remove", d.dir, d.hostId)]);
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

/**
 * The worker environment of the suites that run the real worker on the in-memory runtime
 * (worker/runtime/memory): no socket that could reach a real engine, unbound hosts direct (so
 * verify_egress has nothing to check), quick heartbeats, schedulers that only run when a test
 * asks. Suites add what they are about.
 */
export function memoryWorkerEnv(h: ApiHarness, overrides: Record<string, string> = {}): Record<string, string | undefined> {
  return {
    ...h.env,
    DOCKER_SOCKET: "/nonexistent/ccp-memory-runtime/docker.sock",
    MGMT_NETWORK: "ccp-mem-mgmt",
    EGRESS_UNDERLAY_NETWORK: "ccp-mem-underlay",
    EGRESS_UNBOUND_POLICY: "direct",
    EGRESS_REQUIRED: "false",
    HEARTBEAT_INTERVAL_SECONDS: "1",
    RECONCILE_INTERVAL_SECONDS: "3600",
    EXPIRY_SCAN_INTERVAL_SECONDS: "3600",
    SWEEP_INTERVAL_SECONDS: "3600",
    IDLE_SCAN_INTERVAL_SECONDS: "3600",
    CONTAINER_STOP_GRACE_SECONDS: "1",
    SSH_READY_TIMEOUT_SECONDS: "2",
    HOST_DISK_LIMIT_MB: "1024",
    ...overrides,
  };
}

/**
 * The worker's dependencies without consumers or schedulers, on the API harness's database, queues
 * and Redis prefix: for tests that drive one part of the worker by hand (the sweeper, the task
 * runner). Logs are dropped; nothing listens for revocations.
 */
export function bareWorkerDeps(h: ApiHarness, redis: Redis, overrides: Record<string, string> = {}): WorkerDeps {
  const config = parseWorkerConfig({ ...h.env, MGMT_NETWORK: TEST_MGMT_NETWORK, EGRESS_UNDERLAY_NETWORK: TEST_UNDERLAY_NETWORK, ...overrides });
  const logger = createLogger({ level: "warn" }, new Writable({ write: (_c, _e, cb) => cb() }));
  // Announced like a real worker's changes, so a test's API streams get them at once.
  const notifyLive = createLiveNotifier(redis, h.prefix);
  return {
    db: h.database.db,
    redis,
    secrets: createSecretBox(config.SECRETS_KEY, config.SECRETS_KEY_PREVIOUS),
    logger,
    clock: () => new Date(),
    notifyLive,
    enqueue: createEnqueuer(h.queues, logger, notifyLive),
    wakeHost: createHostWaker(h.database.db, h.queues, logger),
    maxPendingTasksPerHost: config.HOST_MAX_PENDING_TASKS,
    revoke: async () => {},
    config,
    runtime: createDockerRuntime({ socketPath: config.DOCKER_SOCKET, instance: h.prefix }),
    sshProbe: probeSsh,
    queues: h.queues,
    locks: new HostLocks(redis, h.prefix),
    metrics: createWorkerMetrics(createMetricsRegistry("worker")),
  };
}
