import { describe, expect, it } from "vitest";
import { ServiceError } from "../errors.js";
import { WorkGate } from "./work-gate.js";

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

describe("WorkGate", () => {
  it("runs at most maxActive at once, queues up to maxQueued, refuses the rest with 429 auth_busy", async () => {
    const gate = new WorkGate(2, 3);
    const release = deferred();
    let running = 0;
    let peak = 0;
    const job = () =>
      gate.run(async () => {
        running++;
        peak = Math.max(peak, running);
        await release.promise;
        running--;
        return "done";
      });
    const accepted = Array.from({ length: 5 }, job);
    const refused = await Promise.allSettled(Array.from({ length: 4 }, job));
    for (const r of refused) {
      expect(r.status).toBe("rejected");
      const err = (r as PromiseRejectedResult).reason as ServiceError;
      expect(err).toBeInstanceOf(ServiceError);
      expect([err.kind, err.code, err.extra.retryAfterSeconds]).toEqual(["rate_limited", "auth_busy", 1]);
    }
    release.resolve();
    expect(await Promise.all(accepted)).toEqual(Array(5).fill("done"));
    expect(peak).toBe(2);
    expect(gate.stats).toEqual({ peakActive: 2, refused: 4 });
    // Every slot came back: two more run at once again.
    expect(await Promise.all([job(), job()])).toEqual(["done", "done"]);
  });

  it("frees the slot when the work throws", async () => {
    const gate = new WorkGate(1, 0);
    await expect(gate.run(async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await gate.run(async () => 42)).toBe(42);
  });
});
