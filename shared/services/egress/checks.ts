import { Conflict } from "../../errors.js";
import type { ServiceDeps } from "../context.js";

/** The variables a worker needs to verify an egress (shared/config/worker.ts EGRESS_CHECK_VARIABLES). */
export const CHECKS_NOT_CONFIGURED =
  "the workers have no egress check endpoints: set EGRESS_CHECK_URL, EGRESS_ECHO_URL, EGRESS_DNS_CANARY_DOMAIN, " +
  "EGRESS_DNS_CANARY_API, EGRESS_DNS_CANARY_API_SECRET and EGRESS_CHECK_FORBIDDEN_RESOLVER on the worker " +
  '(README "Deploying the egress check service (checkd)")';

/**
 * Testing an egress or binding one needs a worker that can verify it. Which workers can is what
 * their heartbeats say (shared/health/heartbeats.ts egressChecksAvailable): the worker's own
 * configuration is the one source of truth, and an API process on another machine never has to
 * repeat the check variables. 409 only when the live workers all lack them; with no live worker
 * the request goes through and the worker that takes the task decides (and refuses it with the
 * same code when it lacks them).
 */
export async function assertEgressChecksConfigured(ctx: Pick<ServiceDeps, "egressChecksAvailable">): Promise<void> {
  if (!ctx.egressChecksAvailable) return;
  if ((await ctx.egressChecksAvailable()) === false) throw Conflict("egress_checks_not_configured", CHECKS_NOT_CONFIGURED);
}
