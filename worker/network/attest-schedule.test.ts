import { describe, expect, it } from "vitest";
import { nextAttestAt } from "./attest-schedule.js";

describe("nextAttestAt (docs/egress.md#attestation)", () => {
  const now = new Date("2026-01-01T00:00:00Z");
  it("lands between 75 % and 85 % of the interval: spread out, early enough to block a drift within one interval", () => {
    expect(nextAttestAt(now, 300, () => 0).getTime() - now.getTime()).toBe(225_000);
    expect(nextAttestAt(now, 300, () => 0.999999).getTime() - now.getTime()).toBeLessThanOrEqual(255_000);
    expect(nextAttestAt(now, 300, () => 0.5).getTime() - now.getTime()).toBe(240_000);
  });
});
