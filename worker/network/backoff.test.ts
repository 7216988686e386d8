import { describe, expect, it } from "vitest";
import { backoff } from "./backoff.js";

describe("readiness back-off (issue 12)", () => {
  it("starts at a few milliseconds and doubles up to the cap", () => {
    const b = backoff({ firstMs: 5, capMs: 100 });
    expect(Array.from({ length: 8 }, () => b.next())).toEqual([5, 10, 20, 40, 80, 100, 100, 100]);
  });

  it("never sleeps past the deadline", () => {
    const b = backoff({ firstMs: 50, capMs: 100 });
    expect(b.next(Date.now() - 1)).toBe(0);
    expect(b.next(Date.now() + 1_000_000)).toBe(100);
  });
});
