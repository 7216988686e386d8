import { readdirSync, readFileSync, statSync } from "node:fs";
import { connect } from "node:net";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { runtimeImports } from "./imports.js";

/**
 * The unit tier stays service-free (README "Testing"): `npm run test:unit` runs every test next to
 * its code and under test/unit/ with no Postgres, Redis or Docker. Two guards:
 *  - statically, no such test imports a service client or a harness that starts services (a test
 *    that needs one belongs under test/integration or test/docker);
 *  - at run time under the unit config, the services' addresses point at nothing, so a test that
 *    reached one anyway (through some import chain) fails instead of passing on a developer's box.
 */

const ROOT = process.cwd();
/** Where unit tests live: every top-level directory but test/ (tests next to their code), and test/unit. */
const UNIT_ROOTS = [
  ...readdirSync(ROOT).filter((n) => !["test", "node_modules", "dist"].includes(n) && !n.startsWith(".") && statSync(join(ROOT, n)).isDirectory()),
  "test/unit",
];

/** Modules whose use in a test means a service: clients, the harnesses that start them. */
const SERVICE_IMPORTS: RegExp[] = [
  /^ioredis$/,
  /^postgres$/,
  /^bullmq$/,
  /^dockerode$/,
  /\/shared\/test\/(api-harness|worker-harness|databases|sshd-harness|processes|vnc)\.js$/,
  /\/test\/(api-harness|worker-harness|databases|sshd-harness|processes|vnc)\.js$/,
  /(^|\/)redis\.js$/,
  /\/db\/client\.js$/,
  /\/runtime\/docker\/docker-runtime\.js$/,
  /\/worker\/main\.js$|^\.\.?\/main\.js$/,
  /\/api\/main\.js$/,
];

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist" || name.startsWith(".")) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

describe("the unit tier", () => {
  const files = UNIT_ROOTS.flatMap((r) => walk(join(ROOT, r))).map((f) => relative(ROOT, f));

  it("finds the co-located tests (the walk itself works)", () => {
    expect(files).toContain("shared/crypto/secrets.test.ts");
    expect(files).toContain("worker/runtime/memory/memory-runtime.test.ts");
  });

  it("imports no service client or service harness in any unit test", () => {
    const offenders = files.flatMap((f) =>
      runtimeImports(readFileSync(join(ROOT, f), "utf8"))
        .filter((spec) => SERVICE_IMPORTS.some((re) => re.test(spec)))
        .map((spec) => `${f} imports ${spec}`),
    );
    expect(offenders, "move these tests under test/integration (or test/docker)").toEqual([]);
  });

  it("reads the import lines it has to (the guard's own parser)", () => {
    const src = [
      'import type { Redis } from "ioredis";',
      'import { createRedis } from "../redis.js";',
      'import postgres from "postgres";',
      'export { x } from "./x.js";',
      'const m = await import("left-pad");',
      'const r = require("ssh2/lib/protocol/utils.js");',
      'import "./side-effect.js";',
    ].join("\n");
    expect(runtimeImports(src)).toEqual(["../redis.js", "postgres", "./x.js", "left-pad", "ssh2/lib/protocol/utils.js", "./side-effect.js"]);
  });

  // Runs in every tier (never skipped): the unit config's addresses are read from the config
  // itself, and under that config the process really has them.
  it("points every service address of the unit tier at nothing", async () => {
    const { default: unitConfig } = await import("../../vitest.unit.config.js");
    const env = unitConfig.test!.env as Record<string, string>;
    for (const v of ["DATABASE_URL", "REDIS_URL"]) {
      const url = new URL(env[v]!);
      expect(url.hostname, v).toBe("127.0.0.1");
      const refused = await new Promise<boolean>((resolve) => {
        const s = connect(Number(url.port), url.hostname);
        s.once("connect", () => {
          s.destroy();
          resolve(false);
        });
        s.once("error", () => resolve(true));
      });
      expect(refused, `${v} must point at a closed port`).toBe(true);
      if (process.env.CCP_TEST_TIER === "unit") expect(process.env[v], v).toBe(env[v]);
    }
    expect(() => statSync(env.DOCKER_SOCKET!)).toThrow();
  });
});
