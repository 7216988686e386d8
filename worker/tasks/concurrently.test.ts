import { describe, expect, it } from "vitest";
import { concurrently } from "./runner.js";
import { TaskCanceled, TaskError } from "./task-error.js";

describe("concurrently (steps at once)", () => {
  it("waits for every branch before it rethrows, and rethrows the first failure in argument order", async () => {
    const order: string[] = [];
    let releaseSlow!: () => void;
    const slow = new Promise<void>((r) => (releaseSlow = r)).then(() => order.push("slow done"));
    const failing = Promise.reject(new TaskError("leak_detected", "first"));
    const later = Promise.reject(new TaskError("ssh_not_ready", "second"));
    let settled = false;
    const all = concurrently(failing, slow, later).catch((e: unknown) => {
      settled = true;
      throw e;
    });
    // The failures are known at once, but the slow branch still runs: nothing is rethrown yet.
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    releaseSlow();
    await expect(all).rejects.toMatchObject({ code: "leak_detected" });
    expect(order).toEqual(["slow done"]);
  });

  it("a cancel wins over the other failures; all succeeding resolves", async () => {
    await expect(concurrently(Promise.reject(new TaskError("leak_detected", "x")), Promise.reject(new TaskCanceled()))).rejects.toBeInstanceOf(TaskCanceled);
    await expect(concurrently(Promise.resolve(1), Promise.resolve())).resolves.toBeUndefined();
  });
});
