import { readFileSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../../paths.js";
import { shellQuote } from "./shell-quote.js";

export type ScriptName = "bootstrap" | "entry";

const cache = new Map<ScriptName, string>();

const read = (file: string) => readFileSync(join(projectRoot, "api", "scripts", file), "utf8");

/**
 * The script file with its `# ccp:include <file>` lines replaced by that file (the helpers both
 * scripts share), so that what is served is one self-contained script.
 */
function template(name: ScriptName): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = read(`${name}.sh`).replace(/^# ccp:include ([a-z-]+\.sh)$/gm, (_line, file: string) => read(file).trimEnd());
    cache.set(name, text);
  }
  return text;
}

/**
 * A script with its values embedded as single-quoted shell words (docs/api.md#bootstrap, docs/api.md#entry).
 * Placeholders are `__CCP_<NAME>__`; each must be present. split/join rather than String.replace,
 * so that `$&`-style patterns in a value are never interpreted.
 */
export function renderScript(name: ScriptName, values: Record<string, string>): string {
  let text = template(name);
  for (const [key, value] of Object.entries(values)) {
    const placeholder = `__CCP_${key}__`;
    if (!text.includes(placeholder)) throw new Error(`${name}.sh has no placeholder ${placeholder}`);
    text = text.split(placeholder).join(shellQuote(value));
  }
  const left = /__CCP_[A-Z_]+__/.exec(text);
  if (left) throw new Error(`${name}.sh: placeholder ${left[0]} was not filled`);
  return text;
}
