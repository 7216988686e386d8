import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import { VERSION } from "../version.js";

export type { Registry };

/**
 * One Prometheus registry per process (README "Observability"), built in the composition root and
 * passed down like any other dependency: never prom-client's global registry, so that tests can
 * build several apps in one process without their series mixing or colliding.
 *
 * The default process metrics (CPU, memory, event-loop lag, GC, handles) come with it, under their
 * standard names so that stock dashboards work, and `ccp_build_info{version,process}` = 1.
 */
export function createMetricsRegistry(process: "api" | "worker" | "sshd"): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: "ccp_build_info",
    help: "Always 1; the labels name the running version and process",
    labelNames: ["version", "process"],
    registers: [registry],
  }).set({ version: VERSION, process }, 1);
  return registry;
}

/** The `direction` label of the byte counters: `in` = from the client to the host, `out` = back. */
export type ByteDirection = "in" | "out";

export interface ByteCounter {
  /**
   * Count the bytes of one open connection from its own running totals (read on every scrape,
   * never per chunk: the hot path stays untouched). The returned function counts what is left
   * and stops reading; call it when the connection ends.
   */
  track(read: () => { in: number; out: number }): () => void;
}

/**
 * A `<name>{direction}` counter fed by the running totals of open connections: on a scrape each
 * open connection adds what it moved since the last scrape, and a connection adds its last bytes
 * when it ends. So the counter is current while a long session is open, not only after it closed.
 */
export function createByteCounter(registry: Registry, name: string, help: string): ByteCounter {
  const open = new Set<() => void>();
  const counter = new Counter({
    name,
    help,
    labelNames: ["direction"],
    registers: [registry],
    collect() {
      for (const flush of open) flush();
    },
  });
  // Both series exist from the start (a rate() over a series that appears late misses its start).
  counter.inc({ direction: "in" }, 0);
  counter.inc({ direction: "out" }, 0);
  return {
    track(read) {
      let seen = { in: 0, out: 0 };
      const flush = () => {
        const now = read();
        const dIn = now.in - seen.in;
        const dOut = now.out - seen.out;
        if (dIn > 0) counter.inc({ direction: "in" }, dIn);
        if (dOut > 0) counter.inc({ direction: "out" }, dOut);
        seen = { in: Math.max(seen.in, now.in), out: Math.max(seen.out, now.out) };
      };
      open.add(flush);
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        open.delete(flush);
        flush();
      };
    },
  };
}
