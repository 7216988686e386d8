import { randomUUID } from "node:crypto";
import { and, asc, eq, isNull, lte, or, sql } from "drizzle-orm";
import { type AttestationRow, egressAttestations, hostEgressBindings, hosts } from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";
import type { WorkerDeps } from "../deps.js";
import { gatewayName } from "../hosts/names.js";
import { ensureNetworks } from "../hosts/steps.js";
import { toTaskError } from "../tasks/runner.js";
import { nextAttestAt } from "./attest-schedule.js";
import { loadEgress } from "./egress-source.js";
import { gwtestName, startTestGateway } from "./egress-test.js";
import { applyGatewayLive, nextGeneration, readGatewayStatus } from "./gateway.js";
import { renderGatewayFiles } from "./gateway-files.js";
import { applyHostEgress, guardedPlanContext, type Networks, underlayAddresses } from "./host-egress.js";
import { EGRESS_CODES, setEgressHealth } from "./outcome.js";
import { egressConfig, systemResolver } from "./plan.js";
import { type Probe, probeName } from "./probe.js";
import { notRunVerdict, runEgressChecks, type Verdict } from "./verify.js";

/**
 * Continuous egress attestation (docs/egress.md#attestation). Every bound, running host's egress is
 * checked again about every EGRESS_ATTEST_INTERVAL_SECONDS with the checks of the egress test
 * (exit address == declared, DNS seen only from the egress, forbidden resolver refused), from a
 * probe in its gateway's namespace. A failure fails closed at once: the binding is quarantined and
 * the gateway goes to blocked mode (SSH and the desktop still answer: the blocked ruleset keeps the
 * management side), with an `egress.attestation.failed` event. A quarantined binding is attested
 * in an ephemeral test gateway instead (the host's own stays blocked meanwhile); when that passes,
 * the quarantine is lifted, the egress applied to the host's gateway and checked there once more,
 * and `egress.attestation.recovered` is recorded.
 *
 * Ordering is fail-closed at every step: the quarantine is written before the gateway is blocked
 * (a worker killed in between leaves a quarantined binding whose next attestation blocks the
 * gateway first), and lifted before the egress is applied (killed in between: the gateway is still
 * blocked and the next attestation, finding the checks fail there, quarantines it again).
 */

/** Codes that say nothing about the egress (the engine, the check service): not a verdict. */
const NOT_A_VERDICT = new Set(["docker_unavailable", "image_missing", "container_start_failed", "egress_checks_not_configured", "internal_error"]);

export interface DueBinding {
  hostId: string;
  userId: string;
  shortId: string;
  egressIpId: string;
  quarantinedAt: Date | null;
}

/** Bindings of running hosts on this engine that are due, oldest first. */
export async function dueBindings(deps: WorkerDeps, limit: number): Promise<DueBinding[]> {
  const now = deps.clock();
  return deps.db
    .select({
      hostId: hosts.id,
      userId: hosts.userId,
      shortId: hosts.shortId,
      egressIpId: hostEgressBindings.egressIpId,
      quarantinedAt: hostEgressBindings.quarantinedAt,
    })
    .from(hostEgressBindings)
    .innerJoin(hosts, eq(hosts.id, hostEgressBindings.hostId))
    .where(
      and(
        eq(hosts.engineId, deps.config.ENGINE_ID),
        eq(hosts.status, "running"),
        eq(hosts.desiredState, "running"),
        or(isNull(hostEgressBindings.nextAttestAt), lte(hostEgressBindings.nextAttestAt, now)),
      ),
    )
    .orderBy(asc(sql`coalesce(${hostEgressBindings.nextAttestAt}, 'epoch'::timestamptz)`))
    .limit(limit);
}

/**
 * One scheduler run: attest every due binding of this engine, EGRESS_ATTEST_CONCURRENCY at a time.
 * A host whose lock is taken (a task runs on it) is left for the next run.
 */
export async function runAttestations(deps: WorkerDeps): Promise<{ attested: number; blocked: number; recovered: number; busy: number }> {
  const out = { attested: 0, blocked: 0, recovered: 0, busy: 0 };
  if (deps.config.EGRESS_ATTEST_INTERVAL_SECONDS === 0 || !deps.config.EGRESS_CHECKS) return out;
  const due = await dueBindings(deps, 200);
  let next = 0;
  const lane = async () => {
    while (next < due.length) {
      const b = due[next++]!;
      try {
        const row = await attestBinding(deps, b);
        if (!row) out.busy++;
        else {
          out.attested++;
          if (row.action === "blocked") out.blocked++;
          if (row.action === "recovered") out.recovered++;
        }
      } catch (err) {
        deps.logger.warn({ err, host_id: b.hostId }, "egress attestation could not run");
      }
    }
  };
  await Promise.all(Array.from({ length: deps.config.EGRESS_ATTEST_CONCURRENCY }, lane));
  return out;
}

/** Attest one binding under its host's lock; null when the host is busy or no longer qualifies. */
export async function attestBinding(deps: WorkerDeps, b: DueBinding): Promise<AttestationRow | null> {
  const lock = await deps.locks.acquire(`host:${b.hostId}`);
  if (!lock) return null;
  const keep = setInterval(() => void lock.extend().catch(() => {}), Math.max(1000, deps.locks.ttlMs / 3));
  try {
    // Under the lock: the host may have stopped or been unbound since it was listed.
    const [cur] = await deps.db
      .select({
        status: hosts.status,
        egressIpId: hostEgressBindings.egressIpId,
        quarantinedAt: hostEgressBindings.quarantinedAt,
        nextAttestAt: hostEgressBindings.nextAttestAt,
      })
      .from(hostEgressBindings)
      .innerJoin(hosts, eq(hosts.id, hostEgressBindings.hostId))
      .where(eq(hosts.id, b.hostId));
    if (!cur || cur.status !== "running" || cur.egressIpId !== b.egressIpId) return null;
    // Attested by someone else since it was listed (a verification at a task, an earlier run).
    if (cur.nextAttestAt && cur.nextAttestAt > deps.clock()) return null;
    const egress = await loadEgress(deps, b.egressIpId);
    const setNext = () =>
      deps.db
        .update(hostEgressBindings)
        .set({ nextAttestAt: nextAttestAt(deps.clock(), deps.config.EGRESS_ATTEST_INTERVAL_SECONDS) })
        .where(eq(hostEgressBindings.hostId, b.hostId));
    // A disabled egress already blocks the host by its plan; nothing to attest.
    if (!egress || egress.status !== "available") {
      await setNext();
      return null;
    }
    const started = Date.now();
    // The row's time is when the checks began: a drift is caught by the first attestation that
    // starts after it (docs/egress.md#attestation), which is what the drills assert.
    const attestedAt = deps.clock();
    const id = randomUUID();
    const net = await ensureNetworks(deps);
    const gw = gatewayName(b.hostId);
    const quarantined = cur.quarantinedAt !== null;
    let verdict: Verdict;
    let action: AttestationRow["action"] = "none";
    // A failed verdict whose block did not take: left due, so the next run (a tick away) blocks it.
    let retrySoon = false;
    if (!quarantined) {
      verdict = await checkInHostGateway(deps, id, gw, egress, net);
      // An egress that did not answer in time is asked once more at once before the host is
      // blocked: on a loaded engine a single slow answer is not a drift. A wrong exit address or
      // a DNS source is never retried.
      if (verdict.status === "failed" && verdict.error_code === "egress_unreachable") {
        verdict = await checkInHostGateway(deps, `${id.slice(0, 30)}-r`, gw, egress, net);
      }
      if (verdict.status === "failed" && isVerdict(verdict)) {
        if (await quarantine(deps, b, verdict, net, gw)) action = "blocked";
        else retrySoon = true;
      }
    } else {
      // Keep the promise of the quarantine first: a gateway that is not blocked (a worker killed
      // between the two writes) is blocked before anything else.
      const s = await readGatewayStatus(deps, gw);
      if (s?.mode !== "blocked") await blockGateway(deps, net, gw);
      verdict = await checkInTestGateway(deps, id, egress, net);
      if (verdict.status === "passed") {
        const r = await recover(deps, b, id, egress, net, gw);
        verdict = r.verdict;
        if (verdict.status === "passed") action = "recovered";
        else if (!r.blocked) retrySoon = true;
      }
    }
    if (!isVerdict(verdict)) {
      // The engine or the check service failed, not the egress: no row and no change (a host that
      // passed stays open, a quarantined one stays blocked); counted, and tried again next time.
      deps.logger.warn({ host_id: b.hostId, code: verdict.error_code }, "egress attestation did not reach a verdict");
      deps.metrics.egressVerifications.inc({ kind: "attest", mode: egress.tunnelType, result: verdict.error_code ?? "internal_error" });
      await setNext();
      return null;
    }
    const r = verdict.results;
    const [row] = await deps.db
      .insert(egressAttestations)
      .values({
        id,
        hostId: b.hostId,
        userId: b.userId,
        egressIpId: b.egressIpId,
        engineId: deps.config.ENGINE_ID,
        attestedAt,
        verdict: verdict.status,
        errorCode: verdict.error_code,
        expectedIp: egress.ipAddress,
        observedIp: r.exit_ip.observed ?? null,
        dnsSources: r.dns_leak.resolvers_seen ?? [],
        latencyMs: r.connectivity.latency_ms ?? null,
        durationMs: Date.now() - started,
        action,
        checks: r as unknown as Record<string, unknown>,
      })
      .returning();
    if (!retrySoon) await setNext();
    deps.metrics.egressVerifications.inc({ kind: "attest", mode: egress.tunnelType, result: verdict.error_code ?? verdict.status });
    if (action === "recovered") {
      await recordEvent(deps.db, {
        type: "egress.attestation.recovered",
        message: `egress ${egress.ipAddress} attested again on host ${b.shortId}: traffic resumed`,
        hostId: b.hostId,
        userId: b.userId,
        metadata: { egress_ip_id: egress.id, attestation_id: id, observed_ip: r.exit_ip.observed ?? null },
      });
    }
    if (verdict.status === "passed" || EGRESS_CODES.has(verdict.error_code as never)) {
      await setEgressHealth(deps, egress.id, verdict.status === "passed" ? "passing" : "failing", { taskId: null, hostId: b.hostId, userId: b.userId });
    }
    return row!;
  } finally {
    clearInterval(keep);
    await lock.release().catch(() => {});
  }
}

const isVerdict = (v: Verdict) => v.status === "passed" || !NOT_A_VERDICT.has(v.error_code ?? "");

type Egress = NonNullable<Awaited<ReturnType<typeof loadEgress>>>;

async function checkInHostGateway(deps: WorkerDeps, id: string, gw: string, egress: Egress, net: Networks): Promise<Verdict> {
  try {
    const { expectation } = await egressConfig(deps, egress, await guardedPlanContext(deps, net), systemResolver);
    const underlay = await underlayAddresses(deps, gw, net);
    return await runEgressChecks(deps, { taskId: id, gatewayName: gw, expectation, underlay });
  } catch (err) {
    const te = toTaskError(err);
    return notRunVerdict(te.code, te.message, egress.ipAddress);
  }
}

async function checkInTestGateway(deps: WorkerDeps, id: string, egress: Egress, net: Networks): Promise<Verdict> {
  let probe: Promise<Probe> | undefined;
  try {
    const { config, expectation } = await egressConfig(deps, egress, await guardedPlanContext(deps, net, false), systemResolver);
    await startTestGateway(deps, id, config, (p) => (probe = p));
    const underlay = await underlayAddresses(deps, gwtestName(id), net);
    return await runEgressChecks(deps, { taskId: id, gatewayName: gwtestName(id), expectation, underlay }, { probe });
  } catch (err) {
    const te = toTaskError(err);
    return notRunVerdict(te.code, te.message, egress.ipAddress);
  } finally {
    await probe?.catch(() => {});
    await Promise.all([
      deps.runtime.removeContainer(probeName(id)).catch(() => {}),
      deps.runtime.removeContainer(gwtestName(id)).catch(() => {}),
    ]);
  }
}

async function blockGateway(deps: WorkerDeps, net: Networks, gw: string): Promise<void> {
  const ctx = await guardedPlanContext(deps, net);
  const generation = nextGeneration((await readGatewayStatus(deps, gw))?.generation ?? 0);
  await applyGatewayLive(deps, gw, renderGatewayFiles({ mode: "blocked", mgmt: ctx.mgmt }, generation), generation);
}

/**
 * Quarantine the binding and block the gateway. The block is tried even when the database write
 * failed (it needs only the engine), and a database failure is thrown after it. Returns whether
 * the gateway is blocked; when not, the caller leaves the binding due so the next run tries again
 * (a quarantined binding's attestation blocks its gateway before anything else).
 */
async function quarantine(deps: WorkerDeps, b: DueBinding, verdict: Verdict, net: Networks, gw: string): Promise<boolean> {
  const code = verdict.error_code ?? "egress_unreachable";
  let dbError: unknown = null;
  await deps.db
    .update(hostEgressBindings)
    .set({ quarantinedAt: deps.clock(), quarantineCode: code })
    .where(and(eq(hostEgressBindings.hostId, b.hostId), eq(hostEgressBindings.egressIpId, b.egressIpId)))
    .catch((err: unknown) => (dbError = err));
  let blocked = true;
  try {
    await blockGateway(deps, net, gw);
  } catch (err) {
    blocked = false;
    deps.logger.error({ err, host_id: b.hostId }, "the attestation failed and the gateway could not be blocked yet");
  }
  if (dbError) throw dbError;
  const failed = Object.values(verdict.results).find((r) => r.status === "fail");
  await recordEvent(deps.db, {
    type: "egress.attestation.failed",
    level: "error",
    message: `egress attestation failed on host ${b.shortId} (${code}): the host is blocked until it passes again`,
    hostId: b.hostId,
    userId: b.userId,
    metadata: { egress_ip_id: b.egressIpId, error_code: code, error: failed?.error ?? null, gateway_blocked: blocked, checks: verdict.results },
  });
  return blocked;
}

/** Lift the quarantine, apply the egress to the host's gateway and check it there (fail-closed order). */
async function recover(deps: WorkerDeps, b: DueBinding, id: string, egress: Egress, net: Networks, gw: string): Promise<{ verdict: Verdict; blocked: boolean }> {
  await deps.db
    .update(hostEgressBindings)
    .set({ quarantinedAt: null, quarantineCode: null })
    .where(and(eq(hostEgressBindings.hostId, b.hostId), eq(hostEgressBindings.egressIpId, b.egressIpId)));
  const verdict = await (async () => {
    try {
      await applyHostEgress(deps, { id: b.hostId }, net, async (_name, fn) => fn());
    } catch (err) {
      const te = toTaskError(err);
      return notRunVerdict(te.code === "internal_error" ? "tunnel_setup_failed" : te.code, te.message, egress.ipAddress);
    }
    return checkInHostGateway(deps, `${id.slice(0, 30)}-h`, gw, egress, net);
  })();
  if (verdict.status !== "passed") {
    // Passed in the test gateway, not in the host's own: blocked again — the gateway first here,
    // whatever the database says, since the egress was just applied to it.
    let blocked = true;
    await blockGateway(deps, net, gw).catch((err: unknown) => {
      blocked = false;
      deps.logger.error({ err, host_id: b.hostId }, "could not block the gateway again");
    });
    await deps.db
      .update(hostEgressBindings)
      .set({ quarantinedAt: deps.clock(), quarantineCode: verdict.error_code ?? "egress_unreachable" })
      .where(and(eq(hostEgressBindings.hostId, b.hostId), eq(hostEgressBindings.egressIpId, b.egressIpId)));
    return { verdict, blocked };
  }
  return { verdict, blocked: false };
}

