import { readFileSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "./paths.js";

/**
 * The package version, read from package.json at run time (from sources or from `dist/` alike):
 * `node dist/main.js --version`, `/healthz` and the `ccp_build_info` series report the same one.
 */
export const VERSION: string = (() => {
  const pkg = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version?: unknown };
  return typeof pkg.version === "string" ? pkg.version : "unknown";
})();
