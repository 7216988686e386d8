import { defineConfig } from "vitest/config";

/**
 * The unit tier (`npm run test:unit`, README "Testing"): every test that sits next to its code
 * (any `*.test.ts` outside `test/`) and those in `test/unit/`. They need no Postgres, Redis or
 * Docker, so there is no global setup, and the services' addresses point at nothing: a unit test
 * that reached for one fails at once instead of quietly passing on a developer's machine
 * (test/unit/unit-tier.test.ts checks both). Anything that needs a service lives under test/.
 * `npm test` runs these too, once, with everything else (vitest.config.ts).
 */
export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    // test/integration, test/docker, test/e2e, test/fuzz: the tiers that need services.
    exclude: ["**/node_modules/**", "dist/**", "test/!(unit)/**"],
    env: {
      CCP_TEST_TIER: "unit",
      // Closed ports and a socket that does not exist (variables set here win over .env).
      DATABASE_URL: "postgres://ccp:unit@127.0.0.1:1/ccp_unit_tier",
      REDIS_URL: "redis://127.0.0.1:1",
      DOCKER_SOCKET: "/nonexistent/ccp-unit-tier/docker.sock",
      DOCKER_HOST: "unix:///nonexistent/ccp-unit-tier/docker.sock",
    },
    testTimeout: 30_000,
    pool: "forks",
    reporters: ["default"],
  },
});
