import { describe, expect, it } from "vitest";
import { generatePassword, generateShortId, randomString } from "./random.js";

describe("random strings", () => {
  it("generates 20-character alphanumeric passwords", () => {
    for (let i = 0; i < 200; i++) expect(generatePassword()).toMatch(/^[A-Za-z0-9]{20}$/);
  });

  it("generates 6-character lowercase short ids", () => {
    for (let i = 0; i < 200; i++) expect(generateShortId()).toMatch(/^[a-z0-9]{6}$/);
  });

  it("uses the whole alphabet without a visible bias", () => {
    // 62 symbols: 256 % 62 != 0, so a modulo without rejection would favour the first 8 symbols
    // by 5/4. With 124,000 draws each symbol expects 2,000 (sd ≈ 44); ±20 % is > 9 sd.
    const counts = new Map<string, number>();
    const s = randomString(124_000);
    for (const ch of s) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect(counts.size).toBe(62);
    for (const n of counts.values()) {
      expect(n).toBeGreaterThan(1600);
      expect(n).toBeLessThan(2400);
    }
  });
});
