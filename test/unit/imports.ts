/**
 * The modules a TypeScript source loads at run time: static imports and re-exports (type-only
 * ones are erased by tsc), dynamic `import()` and `require()` with a literal name. A line-based
 * reading, enough for this repository's sources (imports sit at the start of a line).
 */
export function runtimeImports(source: string): string[] {
  const out: string[] = [];
  const re = /^\s*(?:import|export)\s+(?!type\s)(?:[^"';]*?\s+from\s+)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)|\brequire\(\s*["']([^"']+)["']\s*\)/gm;
  for (const m of source.matchAll(re)) out.push((m[1] ?? m[2] ?? m[3])!);
  return out;
}

