import { redisKey } from "../../shared/redis.js";
import { recordEvent } from "../../shared/services/events.js";
import type { WorkerDeps } from "../deps.js";
import { LABEL_HOST_ID, LABEL_ROLE } from "../hosts/names.js";
import type { ContainerState } from "../runtime/runtime.js";
import { readGatewayStatus } from "./gateway.js";

/**
 * The reconciler's part of the ruleset integrity check (docs/egress.md#gateway, docs/egress.md#data-plane): every cycle it
 * reads `ccp-gateway status` of each running host gateway and writes `egress.ruleset.restored`
 * (level error) when `ruleset_restores` grew since the last cycle. The last value seen is kept in
 * Redis per container id (a restarted gateway starts again from 0).
 */
export async function reportRulesetRestores(deps: WorkerDeps, containers: ContainerState[]): Promise<number> {
  let reported = 0;
  for (const c of containers) {
    if (c.labels[LABEL_ROLE] !== "gateway" || !c.running) continue;
    const hostId = c.labels[LABEL_HOST_ID] ?? null;
    const status = await readGatewayStatus(deps, c.name);
    if (!status) continue;
    const key = redisKey(deps.config.REDIS_PREFIX, "ruleset-restores", c.id);
    const seenText = await deps.redis.get(key);
    const seen = seenText === null ? 0 : Number(seenText);
    const now = status.ruleset_restores;
    if (now > seen) {
      await recordEvent(deps.db, {
        type: "egress.ruleset.restored",
        level: "error",
        message: `the kill-switch ruleset of gateway ${c.name} was changed and has been restored`,
        hostId,
        metadata: { gateway: c.name, ruleset_restores: now, new_restores: now - seen, mode: status.mode },
      });
      reported++;
    }
    if (now !== seen || seenText === null) await deps.redis.set(key, String(now), "EX", 7 * 24 * 3600);
  }
  return reported;
}
