import { defineConfig } from "vitest/config";
import base, { DEPLOY_SUITES } from "./vitest.config.js";

/** The deploy-path stage: `npm run test:deploy` (compose and systemd, README "Testing"). */
export default defineConfig({ test: { ...base.test, include: DEPLOY_SUITES, exclude: ["node_modules/**", "dist/**"] } });
