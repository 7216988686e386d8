import { describe, expect, it } from "vitest";
import { addressBucket } from "./admission.js";

describe("addressBucket (the per-address cap's notion of one address)", () => {
  it("keeps IPv4 addresses apart", () => {
    expect(addressBucket("127.0.0.2")).toBe("127.0.0.2");
    expect(addressBucket("203.0.113.9")).not.toBe(addressBucket("203.0.113.10"));
  });

  it("counts an IPv6 /64 as one address, in every spelling", () => {
    const a = addressBucket("2001:db8:1:2::1");
    expect(a).toBe("2001:db8:1:2::/64");
    for (const other of ["2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:0db8:0001:0002:0:0:0:9", "2001:DB8:1:2::a:b", "2001:db8:1:2:0:0:1.2.3.4"]) {
      expect(addressBucket(other), other).toBe(a);
    }
    expect(addressBucket("2001:db8:1:3::1")).not.toBe(a);
    expect(addressBucket("::1")).toBe("0:0:0:0::/64");
    expect(addressBucket("fe80::1")).toBe("fe80:0:0:0::/64");
    expect(addressBucket("2001:db8::")).toBe("2001:db8:0:0::/64");
  });
});
