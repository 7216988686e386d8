import { defineConfig } from "vitest/config";

/**
 * The deploy-path suites (compose, systemd in a booted container) run as their own stage,
 * `npm run test:deploy` (vitest.deploy.config.ts), the last step of `npm test`: they build
 * images and boot whole stacks of their own, a few minutes cold (README "Testing").
 */
export const DEPLOY_SUITES = ["test/e2e/compose.test.ts", "test/e2e/systemd.test.ts"];
/**
 * The chaos stage (docs/chaos.md), `npm run test:chaos`, run by `npm test` between the suite and
 * the deploy stage: three real engines, a 54-host workload and injected faults, ~13 minutes.
 */
export const CHAOS_SUITES = ["test/chaos/**/*.test.ts"];

export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: ["node_modules/**", "dist/**", ...DEPLOY_SUITES, ...CHAOS_SUITES],
    globalSetup: ["./test/global-setup.ts"],
    // Real Postgres, Redis and processes: generous, but no test relies on timing to pass.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // One file at a time: the Docker suites share one engine and two cores, and several measure
    // ordering and recovery that a neighbour's 20-host burst would only blur. Each file still
    // gets its own database and Redis prefix, so files never see each other's rows.
    pool: "forks",
    fileParallelism: false,
    reporters: ["default"],
  },
});
