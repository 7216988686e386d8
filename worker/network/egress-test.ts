import { eq } from "drizzle-orm";
import { egressIps, hostEgressBindings, hosts, tasks } from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";
import type { WorkerDeps } from "../deps.js";
import { gatewayName } from "../hosts/names.js";
import { ensureNetworks } from "../hosts/steps.js";
import { type TaskContext, type TaskProcessor, toTaskError } from "../tasks/runner.js";
import { TaskCanceled, TaskError, type TaskErrorCode } from "../tasks/task-error.js";
import { loadEgress } from "./egress-source.js";
import { activeUpload, applyGatewayLive, nextGeneration, readGatewayStatus, waitGatewayReady } from "./gateway.js";
import { type GatewayConfig, renderGatewayFiles } from "./gateway-files.js";
import { guardedPlanContext, underlayAddresses } from "./host-egress.js";
import { EGRESS_CODES, setEgressHealth } from "./outcome.js";
import { egressConfig, type NameResolver, systemResolver } from "./plan.js";
import { ephemeralLabels, type Probe, probeName, startProbe } from "./probe.js";
import { type CheckOptions, notRunVerdict, requireChecks, runEgressChecks, type Verdict } from "./verify.js";

/**
 * `egress.test` (docs/api.md#egress-test-api, docs/egress.md#egress-test): the egress brought up in an ephemeral gateway
 * `ccp-gwtest-<taskId>` on the underlay only, configured as a host's gateway would be, and the
 * checks of docs/egress.md#verification from a probe in its namespace. A WireGuard egress bound to a host is tested under
 * that host's lock, through the host's own gateway when it runs that tunnel (one key, one
 * endpoint). A test never changes a host, and ignores EGRESS_REQUIRED.
 */

export const gwtestName = (taskId: string) => `ccp-gwtest-${taskId}`;

export interface EgressTestResult {
  task_id: string;
  status: "passed" | "failed";
  error_code: TaskErrorCode | null;
  tested_at: string;
  duration_ms: number;
  results: Verdict["results"];
}

/** Codes that come from the infrastructure, not the egress: health stays as it was. */
const INFRA_CODES: ReadonlySet<TaskErrorCode> = new Set([
  "docker_unavailable",
  "image_missing",
  "container_start_failed",
  "egress_checks_not_configured",
  "internal_error",
]);

export interface EgressTestOptions extends CheckOptions {
  resolve?: NameResolver;
}

async function cancelRequested(deps: WorkerDeps, taskId: string): Promise<boolean> {
  const [row] = await deps.db.select({ cancel: tasks.cancelRequested }).from(tasks).where(eq(tasks.id, taskId));
  return row?.cancel === true;
}

/** Wait for a host's lock (docs/architecture.md#tasks: waiting is never a failure); keeps it alive until released. */
async function takeHostLock(deps: WorkerDeps, hostId: string, taskId: string) {
  for (let i = 0; ; i++) {
    const lock = await deps.locks.acquire(`host:${hostId}`);
    if (lock) {
      const keep = setInterval(() => void lock.extend().catch(() => {}), Math.max(1000, deps.locks.ttlMs / 3));
      return {
        release: async () => {
          clearInterval(keep);
          await lock.release().catch(() => {});
        },
      };
    }
    if (i % 10 === 9 && (await cancelRequested(deps, taskId))) throw new TaskCanceled();
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * A fresh ephemeral gateway `ccp-gwtest-<id>` on the underlay only, running `config`, with the
 * probe joining its namespace while its engine comes up (it only holds until the checks exec in
 * it, and they start after `ready`). Resolves once the gateway is ready; the caller removes both
 * containers. Also the continuous attestation's path for a quarantined host (./attest.ts).
 */
export async function startTestGateway(deps: WorkerDeps, id: string, config: GatewayConfig, onProbe: (p: Promise<Probe>) => void): Promise<void> {
  const name = gwtestName(id);
  const generation = nextGeneration();
  await deps.runtime.createGateway({
    name,
    image: deps.config.GATEWAY_IMAGE,
    hostname: "gwtest",
    labels: ephemeralLabels("gwtest", id),
    networks: [deps.config.EGRESS_UNDERLAY_NETWORK],
    files: [activeUpload(renderGatewayFiles(config, generation))],
  });
  await deps.runtime.startContainer(name);
  const probe = startProbe(deps, id, name);
  probe.catch(() => {}); // its failure is the checks' (runEgressChecks awaits it)
  onProbe(probe); // before the wait: the caller must await it even when the gateway never gets ready
  await waitGatewayReady(deps, name, { generation });
}

export async function runEgressTest(ctx: TaskContext, opts: EgressTestOptions = {}): Promise<EgressTestResult> {
  const { deps, task } = ctx;
  const started = Date.now();
  if (!task.egressIpId) throw new TaskError("internal_error", "the task names no egress");
  const egress = await loadEgress(deps, task.egressIpId);
  if (!egress) throw new TaskError("tunnel_setup_failed", "the egress IP no longer exists");

  const [binding] = await deps.db
    .select({ hostId: hostEgressBindings.hostId })
    .from(hostEgressBindings)
    .where(eq(hostEgressBindings.egressIpId, egress.id));
  const hostLock = egress.tunnelType === "wireguard" && binding ? await takeHostLock(deps, binding.hostId, task.id) : null;
  const budgetFrom = Date.now(); // a wait for the host's lock does not eat the checks' budget
  const testGateway = gwtestName(task.id);
  let verdict: Verdict;
  let infra = false;
  let probe: Promise<Probe> | undefined;
  try {
    try {
      requireChecks(deps.config); // before any container: nothing to check against
      if (!(await deps.runtime.imageExists(deps.config.GATEWAY_IMAGE))) {
        throw new TaskError("image_missing", `image ${deps.config.GATEWAY_IMAGE} is not present on the engine`);
      }
      const net = await ensureNetworks(deps);
      const { config, expectation } = await egressConfig(deps, egress, await guardedPlanContext(deps, net, false), opts.resolve ?? systemResolver);
      let target = testGateway;
      await ctx.step("start_gateway", async () => {
        if (hostLock && binding) {
          const [host] = await deps.db.select({ status: hosts.status }).from(hosts).where(eq(hosts.id, binding.hostId));
          const hostGateway = gatewayName(binding.hostId);
          const status = host?.status === "running" ? await readGatewayStatus(deps, hostGateway) : null;
          if (status?.status === "ready" && status.mode === "wireguard") {
            target = hostGateway;
            return "skipped";
          }
        }
        // The spare (worker/network/test-spare.ts): started and blocked already; the egress goes
        // in by a live apply, the probe joining meanwhile. Gone or broken: the usual path.
        const spare = await deps.testSpare?.take();
        if (spare) {
          try {
            await deps.runtime.renameContainer(spare, testGateway);
            probe = startProbe(deps, task.id, testGateway);
            probe.catch(() => {});
            const generation = nextGeneration();
            await applyGatewayLive(deps, testGateway, renderGatewayFiles(config, generation), generation);
            return;
          } catch (err) {
            if (err instanceof TaskError) throw err; // the egress's own failure (tunnel_setup_failed)
            ctx.log.warn({ err }, "the spare egress-test gateway could not be used: making one");
            await probe?.catch(() => {});
            probe = undefined;
            await deps.runtime.removeContainer(probeName(task.id)).catch(() => {});
            await deps.runtime.removeContainer(spare).catch(() => {});
            await deps.runtime.removeContainer(testGateway).catch(() => {});
          }
        }
        await startTestGateway(deps, task.id, config, (p) => (probe = p));
      });
      let checked!: Verdict;
      await ctx.step("verify_egress", async () => {
        const underlay = await underlayAddresses(deps, target, net);
        // The verdict is due within EGRESS_TOTAL_TIMEOUT_SECONDS of the task's start (docs/api.md#egress-test-api).
        const left = deps.config.EGRESS_TOTAL_TIMEOUT_SECONDS * 1000 - (Date.now() - budgetFrom);
        checked = await runEgressChecks(deps, { taskId: task.id, gatewayName: target, expectation, underlay }, { ...opts, totalMs: left, probe });
      });
      verdict = checked;
    } catch (err) {
      if (err instanceof TaskCanceled) throw err;
      const te = toTaskError(err);
      infra = INFRA_CODES.has(te.code);
      verdict = notRunVerdict(te.code, te.message, egress.ipAddress);
    }
  } finally {
    // A probe still being created would otherwise appear after its removal.
    await probe?.catch(() => {});
    await Promise.all([
      deps.runtime.removeContainer(probeName(task.id)).catch(() => {}),
      deps.runtime.removeContainer(testGateway).catch(() => {}),
    ]);
    await hostLock?.release();
    deps.testSpare?.refill();
  }

  const result: EgressTestResult = {
    task_id: task.id,
    status: verdict.status,
    error_code: verdict.error_code,
    tested_at: new Date().toISOString(),
    duration_ms: Date.now() - started,
    results: verdict.results,
  };
  deps.metrics.egressVerifications.inc({ kind: "test", mode: egress.tunnelType, result: result.error_code ?? result.status });
  await ctx.step("record_result", async () => {
    await deps.db.update(egressIps).set({ lastTest: result, updatedAt: new Date() }).where(eq(egressIps.id, egress.id));
    await recordEvent(deps.db, {
      type: result.status === "passed" ? "egress.test.passed" : "egress.test.failed",
      level: result.status === "passed" ? "info" : "warn",
      message: `egress test ${result.status}${result.error_code ? `: ${result.error_code}` : ""}`,
      taskId: task.id,
      metadata: { egress_ip_id: egress.id, status: result.status, error_code: result.error_code, checks: result.results },
    });
    if (!infra && (result.status === "passed" || (result.error_code && EGRESS_CODES.has(result.error_code)))) {
      await setEgressHealth(deps, egress.id, result.status === "passed" ? "passing" : "failing", { taskId: task.id });
    }
  });
  return result;
}

export const egressTestProcessor: TaskProcessor = {
  plan: () => ["start_gateway", "verify_egress", "record_result"],
  async run(ctx) {
    const result = await runEgressTest(ctx);
    ctx.setResult(result);
    if (result.status !== "passed") {
      const failed = Object.values(result.results).find((r) => r.status === "fail");
      throw new TaskError(result.error_code ?? "egress_unreachable", (failed?.error ?? "egress test failed").slice(0, 500));
    }
  },
  // Cancel: the containers are already removed (finally above); no result is stored.
};
