import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { runtimeImports } from "./imports.js";

/**
 * Dependency hygiene (README "Testing"): the production install (`npm ci --omit=dev`, as
 * deploy/images/build-app.sh stages it) must have everything the processes load, and nothing
 * listed that they never load. Read from the sources, following every run-time import from
 * main.ts (type-only imports are erased by tsc).
 */

const ROOT = process.cwd();
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  engines: { node: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Packages loaded by name at run time rather than imported (pino transports are worker threads). */
function loadedByName(source: string): string[] {
  return [...source.matchAll(/\btarget:\s*["']([^"'./][^"']*)["']/g)].map((m) => m[1]!);
}

const packageOf = (spec: string) => (spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
const isBuiltin = (spec: string) => spec.startsWith("node:") || builtinModules.includes(spec.split("/")[0]!);

/** Every package the product loads at run time, with the first file that loads it. */
function runtimePackages(entry: string): Map<string, string> {
  const seen = new Set<string>();
  const packages = new Map<string, string>();
  const queue = [resolve(ROOT, entry)];
  while (queue.length) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const source = readFileSync(file, "utf8");
    for (const spec of [...runtimeImports(source), ...loadedByName(source)]) {
      if (spec.startsWith(".")) {
        const target = resolve(dirname(file), spec).replace(/\.js$/, ".ts");
        if (!existsSync(target)) throw new Error(`${relative(ROOT, file)}: cannot resolve ${spec}`);
        queue.push(target);
      } else if (!isBuiltin(spec) && !packages.has(packageOf(spec))) {
        packages.set(packageOf(spec), relative(ROOT, file));
      }
    }
  }
  return packages;
}

/** Whether `version` satisfies an npm `engines` range (the forms packages use: >=, ^, ~, ||, x-ranges). */
export function satisfies(version: string, range: string): boolean {
  const v = version.split(".").map(Number) as [number, number, number];
  const cmp = (a: number[], b: number[]) => {
    for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
    return 0;
  };
  const one = (c: string): boolean => {
    const m = /^(>=|<=|>|<|\^|~|=)?v?(\d+|x|\*)?(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/.exec(c);
    if (!m) throw new Error(`unsupported range comparator ${c}`);
    const op = m[1] ?? "=";
    const parts = [m[2], m[3], m[4]];
    const fixed = parts.findIndex((p) => p === undefined || p === "x" || p === "*");
    const n = parts.map((p) => (p === undefined || p === "x" || p === "*" ? 0 : Number(p)));
    const d = cmp(v, n);
    switch (op) {
      case ">=":
        return d >= 0;
      case ">":
        return d > 0;
      case "<=":
        return d <= 0;
      case "<":
        return d < 0;
      case "^": {
        const lead = n[0]! > 0 ? 0 : n[1]! > 0 ? 1 : 2;
        return d >= 0 && v.slice(0, lead + 1).every((x, i) => x === n[i]);
      }
      case "~":
        return d >= 0 && v[0] === n[0] && (fixed === 1 || v[1] === n[1]);
      default: {
        const k = fixed === -1 ? 3 : fixed;
        return v.slice(0, k).every((x, i) => x === n[i]);
      }
    }
  };
  return range.split("||").some((alt) => {
    const comparators = alt.trim().replace(/(>=|<=|>|<|\^|~|=)\s+/g, "$1").split(/\s+/).filter(Boolean);
    return comparators.length === 0 || comparators.every(one);
  });
}

/** The lowest version of each alternative of a range such as `^20.19.0 || >=22.12.0`. */
const floorsOf = (range: string) =>
  range.split("||").map((alt) => {
    const m = /(\d+)\.(\d+)\.(\d+)/.exec(alt);
    if (!m) throw new Error(`engines.node alternative without a full version: ${alt}`);
    return `${m[1]}.${m[2]}.${m[3]}`;
  });

describe("dependencies", () => {
  const used = runtimePackages("main.ts");

  it("loads nothing at run time from devDependencies (or from anything undeclared)", () => {
    const wrong = [...used].filter(([p]) => !(p in pkg.dependencies)).map(([p, f]) => `${p} (loaded by ${f})`);
    expect(wrong, "move these to dependencies, or stop loading them at run time").toEqual([]);
  });

  it("lists no dependency that the processes never load", () => {
    // A peer dependency of a loaded package is loaded by it (hono, under @hono/zod-openapi).
    const needed = new Set(used.keys());
    for (const queue = [...needed]; queue.length; ) {
      const file = join(ROOT, "node_modules", queue.pop()!, "package.json");
      if (!existsSync(file)) continue;
      const peers = (JSON.parse(readFileSync(file, "utf8")) as { peerDependencies?: Record<string, string> }).peerDependencies ?? {};
      for (const p of Object.keys(peers)) if (!needed.has(p) && p in pkg.dependencies) queue.push(p), needed.add(p);
    }
    const unused = Object.keys(pkg.dependencies).filter((p) => !needed.has(p));
    expect(unused, "unused dependencies: remove them (or move them to devDependencies)").toEqual([]);
  });

  it("pins ssh2 exactly: sshd/disconnect.ts reaches into its internals", () => {
    const pinned = pkg.dependencies.ssh2 ?? "";
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    const installed = JSON.parse(readFileSync(join(ROOT, "node_modules/ssh2/package.json"), "utf8")) as { version: string };
    expect(installed.version).toBe(pinned);
    // The comment there names the release line whose internals it uses.
    expect(readFileSync(join(ROOT, "sshd/disconnect.ts"), "utf8")).toContain(`ssh2 ${pinned.replace(/\.\d+$/, ".x")}`);
  });

  it("asks for a Node.js every dependency and tool accepts, and setup checks the same floor", () => {
    const floors = floorsOf(pkg.engines.node);
    const refusing: string[] = [];
    for (const name of [...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)]) {
      const file = join(ROOT, "node_modules", name, "package.json");
      if (!existsSync(file)) continue;
      const range = (JSON.parse(readFileSync(file, "utf8")) as { engines?: { node?: string } }).engines?.node;
      if (!range) continue;
      for (const floor of floors) if (!satisfies(floor, range)) refusing.push(`${name} (${range}) refuses Node ${floor}`);
    }
    expect(refusing, `engines.node is ${pkg.engines.node}`).toEqual([]);
    // The running Node is one the range allows (the suite itself runs on it).
    expect(satisfies(process.versions.node, pkg.engines.node), process.versions.node).toBe(true);
    const setup = readFileSync(join(ROOT, "deploy/scripts/setup.sh"), "utf8");
    for (const floor of floors) expect(setup, `setup.sh checks Node ${floor}`).toContain(floor.replace(/\.0$/, ""));
  });

  it("evaluates engines ranges the way npm does, for the forms in use", () => {
    expect(satisfies("20.19.0", "^20.19.0 || >=22.12.0")).toBe(true);
    expect(satisfies("20.18.3", "^20.19.0 || >=22.12.0")).toBe(false);
    expect(satisfies("21.7.0", "^20.19.0 || >=22.12.0")).toBe(false);
    expect(satisfies("22.12.0", "^20.19.0 || >=22.12.0")).toBe(true);
    expect(satisfies("20.19.0", "^18.0.0 || ^20.0.0 || >=22.0.0")).toBe(true);
    expect(satisfies("20.19.0", ">= 10")).toBe(true);
    expect(satisfies("20.19.0", ">=20.18.1")).toBe(true);
    expect(satisfies("20.11.0", ">=20.18.1")).toBe(false);
    expect(satisfies("20.19.0", "~20.18.0")).toBe(false);
    expect(satisfies("20.19.0", "20.x")).toBe(true);
    expect(satisfies("22.0.0", ">=18 <22")).toBe(false);
  });
});
