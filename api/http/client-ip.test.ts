import type { Context } from "hono";
import { describe, expect, it } from "vitest";
import { createClientIpResolver } from "./client-ip.js";

const ctx = (peer: string, xff?: string) =>
  ({
    env: { incoming: { socket: { remoteAddress: peer } } },
    req: { header: (n: string) => (n === "x-forwarded-for" ? xff : undefined) },
  }) as unknown as Context;

describe("client IP", () => {
  it("uses the TCP peer and ignores X-Forwarded-For by default", () => {
    const ip = createClientIpResolver([]);
    expect(ip(ctx("192.0.2.7", "203.0.113.1"))).toBe("192.0.2.7");
    expect(ip(ctx("::ffff:192.0.2.7"))).toBe("192.0.2.7");
  });

  it("takes the right-most untrusted X-Forwarded-For entry behind a trusted proxy", () => {
    const ip = createClientIpResolver([{ address: "10.0.0.0", prefix: 8, family: 4 }]);
    expect(ip(ctx("10.0.0.5", "198.51.100.9, 203.0.113.1, 10.0.0.4"))).toBe("203.0.113.1");
    expect(ip(ctx("10.0.0.5"))).toBe("10.0.0.5");
    // A client cannot spoof by prepending entries: only the right-most untrusted one counts.
    expect(ip(ctx("10.0.0.5", "192.0.2.99, 203.0.113.1"))).toBe("203.0.113.1");
    // Not from a trusted peer: the header is ignored.
    expect(ip(ctx("192.0.2.7", "203.0.113.1"))).toBe("192.0.2.7");
  });
});
