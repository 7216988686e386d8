import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../shared/paths.js";

/**
 * `node dist/main.js --version` and `--help` (README "Other scripts"): answered before any
 * configuration is read, so they work on a machine with no database, Redis or .env at all.
 */
const pkg = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version: string };

const run = (...args: string[]) =>
  execFileSync(process.execPath, [join(projectRoot, "dist", "main.js"), ...args], {
    cwd: projectRoot,
    encoding: "utf8",
    // Nothing to connect to, and no .env to fall back on: these flags must not need either.
    env: { PATH: process.env.PATH ?? "", ENV_FILE: "/nonexistent/ccp-version-test/env" },
    timeout: 30_000,
  });

beforeAll(() => {
  // Current code in dist/ (incremental: quick when nothing changed). No service is involved.
  execFileSync(process.execPath, [join(projectRoot, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], {
    cwd: projectRoot,
    stdio: "pipe",
  });
}, 180_000);

describe("node dist/main.js", () => {
  it("--version prints the package.json version and nothing else", () => {
    expect(run("--version")).toBe(`${pkg.version}\n`);
  });

  it("--help lists the roles and the main commands", () => {
    const out = run("--help");
    expect(out).toContain(`cloud-cli-proxy ${pkg.version}`);
    for (const word of ["api", "worker", "sshd", "migrate", "secrets:rotate", "--version"]) expect(out, word).toContain(word);
    expect(run("-h")).toBe(out);
  });
});
