import { defineConfig } from "vitest/config";
import base, { CHAOS_SUITES } from "./vitest.config.js";

/** The chaos stage: `npm run test:chaos` (docs/chaos.md; CHAOS_SEED replays a run). */
export default defineConfig({ test: { ...base.test, include: CHAOS_SUITES, exclude: ["node_modules/**", "dist/**"] } });
