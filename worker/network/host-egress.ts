import { eq } from "drizzle-orm";
import { type HostRow, hostEgressBindings } from "../../shared/db/schema/index.js";
import type { WorkerDeps } from "../deps.js";
import { gatewayName } from "../hosts/names.js";
import type { NetworkInfo } from "../runtime/runtime.js";
import { TaskError } from "../tasks/task-error.js";
import { nextAttestAt } from "./attest-schedule.js";
import { applyNext, nextGeneration, readGatewayStatus, uploadNext } from "./gateway.js";
import { type GatewayFiles, renderGatewayFiles } from "./gateway-files.js";
import { recordVerifyFailed, recordVerifyPassed } from "./outcome.js";
import { machineGuard, type MachineGuard } from "./machine.js";
import { type GatewayPlan, type NameResolver, type PlanContext, planForHost, systemResolver } from "./plan.js";
import { runEgressChecks, runIsolationCheck, type CheckOptions } from "./verify.js";
import { isIpv4 } from "./values.js";

/**
 * The egress steps of the host flows (docs/architecture.md#host-flows): the configuration a host's gateway gets
 * (`planHostGateway`), the live apply of `host.apply-egress` (`applyHostEgress`) and the
 * `verify_egress` step (`verifyHostEgress`).
 */

export interface Networks {
  mgmt: NetworkInfo;
  underlay: NetworkInfo;
}

export function planContext(net: Networks, withMgmt = true, guard?: MachineGuard): PlanContext {
  if (!isIpv4(net.underlay.gateway)) throw new TaskError("tunnel_setup_failed", "the underlay network has no IPv4 gateway");
  if (withMgmt && !isIpv4(net.mgmt.gateway)) throw new TaskError("tunnel_setup_failed", "the management network has no IPv4 gateway");
  return {
    mgmt: withMgmt ? { src: net.mgmt.gateway, net: net.mgmt.subnet } : null,
    underlayGateway: net.underlay.gateway,
    ...(guard ? { guard } : {}),
  };
}

/**
 * The plan context of a gateway that runs tenant code or checks an egress: with the machine guard,
 * read now (so a Docker network created since the last start is in it).
 */
export async function guardedPlanContext(deps: Pick<WorkerDeps, "runtime">, net: Networks, withMgmt = true): Promise<PlanContext> {
  return planContext(net, withMgmt, await machineGuard(deps, net.underlay));
}

export async function planHostGateway(
  deps: WorkerDeps,
  host: Pick<HostRow, "id">,
  at: "start" | "apply",
  net: Networks,
  resolve: NameResolver = systemResolver,
): Promise<GatewayPlan> {
  return planForHost(deps, host, at, await guardedPlanContext(deps, net), resolve);
}

/** `write_config` + `reload_gateway` of host.apply-egress: the new mode goes live under the kill switch. */
export async function applyHostEgress(
  deps: WorkerDeps,
  host: Pick<HostRow, "id">,
  net: Networks,
  step: (name: "write_config" | "reload_gateway", fn: () => Promise<void>) => Promise<void>,
): Promise<GatewayPlan> {
  const name = gatewayName(host.id);
  let plan!: GatewayPlan;
  let generation = 0;
  let files!: GatewayFiles;
  await step("write_config", async () => {
    const gw = await deps.runtime.inspectContainer(name);
    if (!gw?.running) throw new TaskError("tunnel_setup_failed", "the host's gateway is not running");
    plan = await planHostGateway(deps, host, "apply", net);
    const current = await readGatewayStatus(deps, name);
    generation = nextGeneration(current?.generation ?? 0);
    files = renderGatewayFiles(plan.config, generation);
    await uploadNext(deps, name, files, generation);
  });
  await step("reload_gateway", async () => {
    await applyNext(deps, name, files, generation);
  });
  return plan;
}

/** The gateway's addresses that must never show up as a DNS source (docs/egress.md#verification underlay set). */
export async function underlayAddresses(deps: Pick<WorkerDeps, "runtime" | "config">, gateway: string, net: Networks): Promise<string[]> {
  const state = await deps.runtime.inspectContainer(gateway);
  const own = state?.networks[deps.config.EGRESS_UNDERLAY_NETWORK];
  return [own, net.underlay.gateway].filter((a): a is string => Boolean(a && isIpv4(a)));
}

/**
 * The `verify_egress` step (docs/egress.md#verification). wireguard/proxy: the three checks; blocked: the isolation
 * check; direct: nothing ("skipped"). Outcome events and the egress's health are recorded here; a
 * failure throws the verdict's code (the flow then fails closed).
 */
export async function verifyHostEgress(
  deps: WorkerDeps,
  v: { host: Pick<HostRow, "id" | "userId" | "shortId">; taskId: string; plan: GatewayPlan; net: Networks },
  opts: CheckOptions = {},
): Promise<"skipped" | void> {
  const mode = v.plan.config.mode;
  const gw = gatewayName(v.host.id);
  const base = { host: v.host, taskId: v.taskId, mode, egressId: v.plan.boundEgressId };
  if (mode === "direct") return "skipped";
  // Without check endpoints there is nothing to probe against: the blocked host's isolation rests
  // on its gateway's ruleset alone (README "Deploying the egress check service (checkd)"). A tunnel
  // mode is never taken as verified: runEgressChecks fails with egress_checks_not_configured.
  if (mode === "blocked" && !deps.config.EGRESS_CHECKS) return "skipped";
  if (mode === "blocked") {
    const r = await runIsolationCheck(deps, v.taskId, gw);
    if (r.passed) {
      await recordVerifyPassed(deps, { ...base, checks: r.checks });
      return;
    }
    const message = "the blocked host reached the network";
    await recordVerifyFailed(deps, { ...base, checks: r.checks, errorCode: "leak_detected", message });
    throw new TaskError("leak_detected", message);
  }
  const expectation = v.plan.egress;
  if (!expectation) throw new TaskError("internal_error", "no egress expectation for a tunnel mode");
  const underlay = await underlayAddresses(deps, gw, v.net);
  const verdict = await runEgressChecks(deps, { taskId: v.taskId, gatewayName: gw, expectation, underlay }, opts);
  if (verdict.status === "passed") {
    await recordVerifyPassed(deps, { ...base, egressId: expectation.egressId, checks: verdict.results });
    // Just verified: the continuous attestation's next check is an interval from now (./attest.ts).
    await deps.db
      .update(hostEgressBindings)
      .set({ nextAttestAt: nextAttestAt(deps.clock(), deps.config.EGRESS_ATTEST_INTERVAL_SECONDS) })
      .where(eq(hostEgressBindings.hostId, v.host.id));
    return;
  }
  const code = verdict.error_code ?? "egress_unreachable";
  const failed = Object.values(verdict.results).find((r) => r.status === "fail");
  const message = `egress verification failed: ${failed?.error ?? code}`;
  await recordVerifyFailed(deps, { ...base, egressId: expectation.egressId, checks: verdict.results, errorCode: code, message });
  throw new TaskError(code, message.slice(0, 500));
}
