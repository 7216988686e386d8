import { and, eq } from "drizzle-orm";
import { hostEgressBindings, hostPool, type HostPoolRow, type HostRow } from "../../shared/db/schema/index.js";
import type { WorkerDeps } from "../deps.js";
import { gatewayName } from "../hosts/names.js";
import { ensureNetworks, isUpAndHealthy } from "../hosts/steps.js";
import { applyGatewayLive, nextGeneration } from "../network/gateway.js";
import { type Probe, startProbe } from "../network/probe.js";
import { renderGatewayFiles } from "../network/gateway-files.js";
import { type Networks, planHostGateway } from "../network/host-egress.js";
import type { GatewayPlan } from "../network/plan.js";

/**
 * The worker's half of a claim (docs/architecture.md#warm-pool): the create transaction made the
 * member the host; the host.create task takes the pool row and finds out whether the fast path
 * applies. The row goes first, so a redelivered task (or one whose member broke) takes the cold
 * path, which is idempotent over the member's objects: nothing is left to a second owner.
 * Returns the member when both containers run as a host's should (gateway first), else null.
 */
export async function takeClaimedMember(deps: WorkerDeps, host: HostRow): Promise<HostPoolRow | null> {
  const [m] = await deps.db.delete(hostPool).where(and(eq(hostPool.id, host.id), eq(hostPool.state, "claimed"))).returning();
  if (!m || !host.managementAddress) return null;
  if (!(await isUpAndHealthy(deps, host.id))) {
    deps.logger.warn({ hostId: host.id }, "claimed pool member is not running: taking the cold path");
    return null;
  }
  return m;
}

/**
 * The egress of a claimed host goes live in its member's gateway, which sits in blocked mode: the
 * plan of a start (binding, EGRESS_UNBOUND_POLICY), applied live under the kill switch as
 * host.apply-egress does. Unchanged (still blocked): null, and the isolation the member proved
 * when it was warmed still stands.
 */
export async function applyClaimEgress(
  deps: WorkerDeps,
  host: HostRow,
  taskId: string,
): Promise<{ plan: GatewayPlan; net: Networks; probe: Promise<Probe> } | null> {
  const [binding] = await deps.db.select({ id: hostEgressBindings.id }).from(hostEgressBindings).where(eq(hostEgressBindings.hostId, host.id));
  if (!binding && deps.config.EGRESS_UNBOUND_POLICY === "block") return null;
  const net = await ensureNetworks(deps);
  const plan = await planHostGateway(deps, host, "start", net);
  // A binding to a disabled egress plans blocked: the gateway already is.
  if (plan.config.mode === "blocked") return null;
  const name = gatewayName(host.id);
  // The verification's probe joins the gateway's namespace while the egress comes up (as an egress
  // test's does): it only holds until the checks exec in it, after the apply is ready.
  const probe = startProbe(deps, taskId, name);
  probe.catch(() => {}); // its failure is the checks' (runEgressChecks awaits it)
  try {
    // No status read for the current generation: the member's was a clock reading when it was
    // warmed, and nextGeneration() is a later one (the apply checks the gateway took exactly it).
    const generation = nextGeneration();
    await applyGatewayLive(deps, name, renderGatewayFiles(plan.config, generation), generation);
  } catch (err) {
    await probe.then((p) => p.remove()).catch(() => {});
    throw err;
  }
  return { plan, net, probe };
}

/** The plan of a host whose gateway stayed blocked, for a verification the member has not done. */
export async function blockedPlan(deps: WorkerDeps, host: HostRow): Promise<{ plan: GatewayPlan; net: Networks }> {
  const net = await ensureNetworks(deps);
  return { plan: await planHostGateway(deps, host, "apply", net), net };
}
