import { describe, expect, it } from "vitest";
import { createLogger } from "../../shared/logger.js";
import type { WorkerDeps } from "../deps.js";
import { MemoryRuntime } from "../runtime/memory/memory-runtime.js";
import { readGatewayStatus } from "./gateway.js";
import { SPARE_MAX_AGE_MS, startTestGatewaySpare } from "./test-spare.js";

const IMG = "gw:latest";

function setup(config: Partial<WorkerDeps["config"]> = {}) {
  const rt = new MemoryRuntime({ images: [IMG] });
  const deps = {
    runtime: rt,
    logger: createLogger({ level: "silent" }),
    config: {
      GATEWAY_IMAGE: IMG,
      EGRESS_UNDERLAY_NETWORK: "under",
      GATEWAY_READY_TIMEOUT_SECONDS: 2,
      EGRESS_TEST_SPARE: true,
      EGRESS_CHECKS: { checkUrl: "http://x/" },
      ...config,
    },
  } as unknown as WorkerDeps;
  const spares = () => [...rt.containers.values()].filter((c) => c.name.startsWith("ccp-gwspare-"));
  return { rt, deps, spares };
}

describe("the spare egress-test gateway (worker/network/test-spare.ts)", () => {
  it("keeps one started, blocked, underlay-only gateway; a take hands it out once, a refill makes the next", async () => {
    const { rt, deps, spares } = setup();
    await rt.ensureNetwork("under", {});
    const keeper = startTestGatewaySpare(deps);
    await keeper.settled();
    const [spare] = spares();
    expect(spare?.running).toBe(true);
    expect(Object.keys(spare!.networks)).toEqual(["under"]);
    expect(await readGatewayStatus(deps, spare!.name)).toMatchObject({ status: "ready", mode: "blocked" });
    expect(await keeper.take()).toBe(spare!.name);
    // Handed out: the keeper no longer owns it, and makes no other until asked.
    expect(await keeper.take()).toBeNull();
    await keeper.settled();
    expect(spares()).toHaveLength(1);
    keeper.refill();
    await keeper.settled();
    expect(spares()).toHaveLength(2);
    // Stop removes the keeper's own spare, never one it handed out.
    await keeper.stop();
    expect(spares().map((c) => c.name)).toEqual([spare!.name]);
  });

  it("a spare too old, or gone, is not handed out (the test makes its own)", async () => {
    const { rt, deps, spares } = setup();
    await rt.ensureNetwork("under", {});
    let t = 1_000_000;
    const keeper = startTestGatewaySpare(deps, () => t);
    await keeper.settled();
    t += SPARE_MAX_AGE_MS + 1;
    expect(await keeper.take()).toBeNull();
    expect(spares()).toHaveLength(0);
    keeper.refill();
    await keeper.settled();
    await rt.removeContainer(spares()[0]!.name);
    expect(await keeper.take()).toBeNull();
    await keeper.stop();
  });

  it("none without the egress checks, or with EGRESS_TEST_SPARE=false", async () => {
    for (const config of [{ EGRESS_CHECKS: null }, { EGRESS_TEST_SPARE: false }]) {
      const { rt, deps, spares } = setup(config as Partial<WorkerDeps["config"]>);
      await rt.ensureNetwork("under", {});
      const keeper = startTestGatewaySpare(deps);
      keeper.refill();
      await keeper.settled();
      expect(spares()).toHaveLength(0);
      expect(await keeper.take()).toBeNull();
      await keeper.stop();
    }
  });
});
