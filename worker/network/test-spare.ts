import { randomUUID } from "node:crypto";
import type { WorkerDeps } from "../deps.js";
import { activeUpload, nextGeneration, waitGatewayReady } from "./gateway.js";
import { renderGatewayFiles } from "./gateway-files.js";
import { ephemeralLabels } from "./probe.js";

/**
 * The spare egress-test gateway (docs/egress.md#egress-test, issue 12): one gateway per worker,
 * created, started and `ready` in blocked mode ahead of time, on the underlay only (like every
 * test gateway: no management network, its ruleset accepts nothing inbound), with no host and no
 * key of any egress. An egress test takes it, renames it to its own `ccp-gwtest-<taskId>` and
 * applies the egress live (one upload, one exec) instead of creating and starting a gateway and
 * waiting for its first configuration; the test removes it as it would its own, and a new spare
 * is made in the background.
 *
 * It is an ephemeral `gwtest` container (labels of a task id of its own), so the reconciler
 * removes a spare left by a dead worker after EPHEMERAL_MAX_AGE (5 min). A spare is therefore
 * never handed out older than MAX_AGE_MS, far enough below that for a whole test, and one that
 * old is replaced.
 */
export const SPARE_MAX_AGE_MS = 150_000;

export interface TestGatewaySpare {
  /** A ready spare's name, no longer this keeper's; null when there is none (the test makes its own). */
  take(): Promise<string | null>;
  /**
   * Make the next spare, in the background. Called by the test once it is done, so the spare's
   * create does not compete with the test for the engine's CPUs.
   */
  refill(): void;
  /** Until the current fill is done (tests). */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

export function startTestGatewaySpare(
  deps: Pick<WorkerDeps, "runtime" | "config" | "logger">,
  /** The clock (tests age a spare without waiting). */
  now: () => number = Date.now,
): TestGatewaySpare {
  let current: { name: string; madeAt: number } | null = null;
  let filling: Promise<void> | null = null;
  let stopped = false;
  const enabled = () => !stopped && deps.config.EGRESS_TEST_SPARE && deps.config.EGRESS_CHECKS !== null;

  const make = async (): Promise<void> => {
    const id = randomUUID();
    const name = `ccp-gwspare-${id}`;
    const generation = nextGeneration();
    try {
      await deps.runtime.createGateway({
        name,
        image: deps.config.GATEWAY_IMAGE,
        hostname: "gwtest",
        labels: ephemeralLabels("gwtest", `spare-${id}`),
        networks: [deps.config.EGRESS_UNDERLAY_NETWORK],
        files: [activeUpload(renderGatewayFiles({ mode: "blocked", mgmt: null }, generation))],
      });
      await deps.runtime.startContainer(name);
      await waitGatewayReady(deps, name, { generation });
    } catch (err) {
      deps.logger.warn({ err }, "could not make the spare egress-test gateway");
      await deps.runtime.removeContainer(name).catch(() => {});
      return;
    }
    if (stopped) {
      await deps.runtime.removeContainer(name).catch(() => {});
      return;
    }
    current = { name, madeAt: now() };
  };
  const fill = () => {
    if (!enabled() || current || filling) return;
    filling = make().finally(() => {
      filling = null;
    });
  };
  // Replaces a spare before it is too old to hand out, so one is usually ready.
  const timer = setInterval(() => {
    if (current && now() - current.madeAt > SPARE_MAX_AGE_MS / 2) {
      const old = current.name;
      current = null;
      void deps.runtime.removeContainer(old).catch(() => {});
    }
    fill();
  }, SPARE_MAX_AGE_MS / 4);
  timer.unref();
  fill();

  return {
    async take() {
      const spare = current;
      current = null;
      if (!spare) return null;
      if (now() - spare.madeAt > SPARE_MAX_AGE_MS || !(await deps.runtime.inspectContainer(spare.name))?.running) {
        await deps.runtime.removeContainer(spare.name).catch(() => {});
        return null;
      }
      return spare.name;
    },
    refill: fill,
    async settled() {
      await filling;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await filling;
      if (current) await deps.runtime.removeContainer(current.name).catch(() => {});
      current = null;
    },
  };
}
