import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadEnvironment } from "./env-file.js";

describe("loadEnvironment", () => {
  it("fills in from .env but lets the environment win", () => {
    const dir = mkdtempSync(join(tmpdir(), "ccp-env-"));
    try {
      const file = join(dir, ".env");
      writeFileSync(file, "A=from-file\nB=from-file\n# comment\nC=\"quoted value\"\n");
      const env = loadEnvironment({ A: "from-env" }, file);
      expect(env.A).toBe("from-env");
      expect(env.B).toBe("from-file");
      expect(env.C).toBe("quoted value");
      expect(loadEnvironment({ A: "x" }, join(dir, "missing")).B).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
