import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { checkInvariants, runCampaign } from "./campaign.js";

/**
 * Issue 10 §6: ≥ 5,000 schema-driven requests with a fixed seed on every CI run (a failure
 * reproduces with the same seed); `npm run fuzz -- --runs N --seed S` runs longer campaigns.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 5_000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261204);

let h: ApiHarness;
beforeAll(async () => {
  // No worker runs here: the egress test route must not wait for one.
  h = await createApiHarness({ EGRESS_TEST_WAIT_SECONDS: "0", LOG_LEVEL: "warn" });
});
afterAll(async () => {
  await h?.close();
});

describe("schema-driven fuzzing of every route", () => {
  it(`${RUNS} requests (seed ${SEED}): no 5xx, every 4xx in the envelope, no half-written rows`, async () => {
    const r = await runCampaign(h, { runs: RUNS, seed: SEED });
    console.log(`fuzz: ${r.requests} requests over ${r.routes} routes, statuses ${JSON.stringify(r.byStatus)}`);
    expect(r.failures, JSON.stringify(r.failures.slice(0, 10), null, 1)).toEqual([]);
    expect(r.requests).toBeGreaterThanOrEqual(RUNS * 0.95);
    // The campaign reached the services, not only the validators and the auth check.
    const ok = Object.entries(r.byStatus).filter(([s]) => Number(s) < 300).reduce((n, [, c]) => n + c, 0);
    expect(ok, JSON.stringify(r.byStatus)).toBeGreaterThan(RUNS * 0.05);

    const health = await h.request("GET", "/readyz");
    expect(health.status, health.text).toBe(200);
    const broken = Object.entries(await checkInvariants(h)).filter(([, n]) => n !== 0);
    expect(broken, "half-written rows").toEqual([]);
  }, Math.max(600_000, RUNS * 100));
});
