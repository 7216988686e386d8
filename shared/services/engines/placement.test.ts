import { describe, expect, it } from "vitest";
import { type EngineLoad, rankEngines } from "./placement.js";

/** rankEngines is pure (docs/engines.md#placement): no database, every axis and tie rule by hand. */

const engine = (id: string, over: Partial<EngineLoad> = {}): EngineLoad => ({
  id,
  memoryMb: null,
  cpus: null,
  maxHosts: null,
  usedMemoryMb: 0,
  usedCpus: 0,
  hosts: 0,
  live: true,
  ...over,
});
const want = (strategy: "spread" | "pack", memoryMb = 4096, cpus = 2) => ({ memoryMb, cpus, strategy });

describe("rankEngines", () => {
  it("spread: the engine with the most room left after placing comes first", () => {
    const loads = [
      engine("a", { maxHosts: 10, hosts: 7 }),
      engine("b", { maxHosts: 10, hosts: 2 }),
      engine("c", { maxHosts: 10, hosts: 5 }),
    ];
    expect(rankEngines(loads, want("spread"))).toEqual(["b", "c", "a"]);
  });

  it("pack: the engine with the least room left that still fits comes first", () => {
    const loads = [
      engine("a", { maxHosts: 10, hosts: 7 }),
      engine("b", { maxHosts: 10, hosts: 2 }),
      engine("c", { maxHosts: 10, hosts: 10 }),
    ];
    expect(rankEngines(loads, want("pack"))).toEqual(["a", "b"]);
  });

  it("spread compares fractions, not absolute room", () => {
    // After placing 4 GiB — a: 6 of 16 GiB free (37.5%); b: 16 of 64 GiB free (25%). Absolute room would pick b.
    const loads = [
      engine("a", { memoryMb: 16384, usedMemoryMb: 6144 }),
      engine("b", { memoryMb: 65536, usedMemoryMb: 45056 }),
    ];
    expect(rankEngines(loads, want("spread"))).toEqual(["a", "b"]);
    expect(rankEngines(loads, want("pack"))).toEqual(["b", "a"]);
  });

  describe("each axis limits on its own", () => {
    it("memory: an exact fit fits, one MiB over does not", () => {
      const loads = [engine("exact", { memoryMb: 8192, usedMemoryMb: 4096 }), engine("over", { memoryMb: 8192, usedMemoryMb: 4097 })];
      expect(rankEngines(loads, want("spread"))).toEqual(["exact"]);
    });

    it("cpus: an exact fit fits despite float sums, a hundredth over does not", () => {
      // 0.1 + 0.2 + 1.7 is not exactly 2 in floating point: the tolerance keeps the exact fit.
      const loads = [engine("exact", { cpus: 4, usedCpus: 0.1 + 0.2 + 1.7 }), engine("over", { cpus: 4, usedCpus: 2.01 })];
      expect(rankEngines(loads, want("spread"))).toEqual(["exact"]);
    });

    it("max_hosts: the last slot fits, a full engine does not", () => {
      const loads = [engine("last", { maxHosts: 3, hosts: 2 }), engine("full", { maxHosts: 3, hosts: 3 })];
      expect(rankEngines(loads, want("pack"))).toEqual(["last"]);
    });

    it("the tightest axis decides the room left", () => {
      // Plenty of memory, but only one host slot of ten left: nearly full for spread.
      const loads = [
        engine("slots", { memoryMb: 1_000_000, maxHosts: 10, hosts: 8 }),
        engine("memory", { memoryMb: 16384, usedMemoryMb: 4096 }),
      ];
      expect(rankEngines(loads, want("spread"))).toEqual(["memory", "slots"]);
    });
  });

  it("max_hosts 0 takes nothing, whatever else it has", () => {
    expect(rankEngines([engine("zero", { maxHosts: 0 })], want("spread"))).toEqual([]);
    expect(rankEngines([engine("zero", { maxHosts: 0, memoryMb: 1_000_000, cpus: 1000 })], want("pack"))).toEqual([]);
  });

  it("unlimited engines always fit: first for spread, last for pack", () => {
    const loads = [engine("limited", { maxHosts: 100, hosts: 1 }), engine("unlimited", { hosts: 500 })];
    expect(rankEngines(loads, want("spread"))).toEqual(["unlimited", "limited"]);
    expect(rankEngines(loads, want("pack"))).toEqual(["limited", "unlimited"]);
  });

  it("ties: spread prefers fewer hosts, pack more, then the id", () => {
    const loads = [engine("c", { hosts: 3 }), engine("b", { hosts: 1 }), engine("a", { hosts: 3 })];
    expect(rankEngines(loads, want("spread"))).toEqual(["b", "a", "c"]);
    expect(rankEngines(loads, want("pack"))).toEqual(["a", "c", "b"]);
    const same = [engine("y"), engine("x"), engine("z")];
    expect(rankEngines(same, want("spread"))).toEqual(["x", "y", "z"]);
    expect(rankEngines(same, want("pack"))).toEqual(["x", "y", "z"]);
  });

  it("a live engine that fits comes before a silent one, whatever the strategy; a silent one still fits", () => {
    const loads = [engine("silent", { maxHosts: 10, live: false }), engine("live", { maxHosts: 10, hosts: 9 })];
    expect(rankEngines(loads, want("spread"))).toEqual(["live", "silent"]);
    expect(rankEngines(loads, want("pack"))).toEqual(["live", "silent"]);
    expect(rankEngines([engine("silent", { live: false })], want("spread"))).toEqual(["silent"]);
  });

  it("nothing fits: an empty ranking", () => {
    expect(rankEngines([], want("spread"))).toEqual([]);
    expect(rankEngines([engine("small", { memoryMb: 1024 })], want("spread"))).toEqual([]);
  });
});
