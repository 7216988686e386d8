import { describe, expect, it } from "vitest";
import { normaliseBindAddress, parseAddressLiteral } from "./forward-address.js";
import { createForwardPolicy } from "./forward-policy.js";

describe("parseAddressLiteral (every form the host's getaddrinfo accepts)", () => {
  it.each([
    ["127.0.0.1", "127.0.0.1"],
    ["2130706433", "127.0.0.1"],
    ["0x7f000001", "127.0.0.1"],
    ["0X7F000001", "127.0.0.1"],
    ["127.1", "127.0.0.1"],
    ["127.0.1", "127.0.0.1"],
    ["0177.0.0.1", "127.0.0.1"],
    ["0x7f.0.0.0x1", "127.0.0.1"],
    ["2852039166", "169.254.169.254"],
    ["0xa9fea9fe", "169.254.169.254"],
    ["169.254.43518", "169.254.169.254"],
    ["0251.0376.0251.0376", "169.254.169.254"],
    ["::ffff:127.0.0.1", "127.0.0.1"],
    ["[::ffff:7f00:1]", "127.0.0.1"],
    ["0:0:0:0:0:FFFF:A9FE:A9FE", "169.254.169.254"],
    ["::FFFF:169.254.169.254", "169.254.169.254"],
    ["0", "0.0.0.0"],
    ["0x", "0.0.0.0"], // glibc reads a bare 0x as 0: checked as that address, not as a name
    ["fe80::1%eth0", "fe80::1"],
    ["::1", "::1"],
    ["::", "::"],
    // IPv6 forms that carry an IPv4 address are checked as that address.
    ["::127.0.0.1", "127.0.0.1"], // IPv4-compatible
    ["::a9fe:a9fe", "169.254.169.254"],
    ["64:ff9b::169.254.169.254", "169.254.169.254"], // NAT64 well-known prefix
    ["64:ff9b::a9fe:a9fe", "169.254.169.254"],
    ["2002:a9fe:a9fe::1", "169.254.169.254"], // 6to4
    ["2002:ac1e:1::", "172.30.0.1"],
    ["2001:0:4136:e378:8000:63bf:5601:5601", "169.254.169.254"], // Teredo client (XOR ffff)
    ["2001:db8::1", "2001:db8::1"],
  ])("%s → %s", (text, want) => {
    expect(parseAddressLiteral(text)).toBe(want);
  });

  it.each(["localhost", "example.test", "256.0.0.1", "1.2.3.4.5", "4294967296", "08.0.0.1", "1..1", "", " ", "1.2.3.-4", "::gg"])(
    "%j is not an address literal",
    (text) => {
      expect(parseAddressLiteral(text)).toBeNull();
    },
  );
});

describe("ForwardPolicy.decide", () => {
  const names: Record<string, string[]> = {
    "meta.example.test": ["169.254.169.254"],
    "mixed.example.test": ["203.0.113.10", "169.254.169.254"],
    "mapped.example.test": ["::ffff:169.254.169.254"],
    "ok.example.test": ["203.0.113.10", "203.0.113.11"],
  };
  const policy = createForwardPolicy("10.99.0.0/16,203.0.113.20:80", async (n) => names[n] ?? []);
  const cp = ["172.30.0.1"];

  it.each(["169.254.169.254", "2852039166", "0xa9fea9fe", "169.254.43518", "0251.0376.0251.0376", "::ffff:a9fe:a9fe", "[::ffff:169.254.169.254]", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "::169.254.169.254"])(
    "metadata as %s is denied with the normalised address",
    async (host) => {
      expect(await policy.decide({ host, port: 80 }, cp)).toEqual({ ok: false, reason: "blocked_address", address: "169.254.169.254" });
    },
  );

  it("control-plane addresses in any form are denied", async () => {
    for (const host of ["172.30.0.1", "2887647233", "0xac1e0001", "172.30.1", "::ffff:ac1e:1"]) {
      expect(await policy.decide({ host, port: 5432 }, cp)).toEqual({ ok: false, reason: "blocked_address", address: "172.30.0.1" });
    }
  });

  it("names are resolved by the proxy and every address is checked", async () => {
    expect(await policy.decide({ host: "meta.example.test", port: 80 }, cp)).toMatchObject({ ok: false, address: "169.254.169.254" });
    expect(await policy.decide({ host: "mixed.example.test", port: 80 }, cp)).toMatchObject({ ok: false, address: "169.254.169.254" });
    expect(await policy.decide({ host: "MAPPED.example.test.", port: 80 }, cp)).toMatchObject({ ok: false, address: "169.254.169.254" });
    expect(await policy.decide({ host: "nowhere.example.test", port: 80 }, cp)).toEqual({ ok: false, reason: "unresolvable", address: null });
    expect(await policy.decide({ host: "bad name", port: 80 }, cp)).toEqual({ ok: false, reason: "unresolvable", address: null });
  });

  it("allowed destinations name the numeric address the host dials", async () => {
    expect(await policy.decide({ host: "2130706433", port: 8000 }, cp)).toEqual({ ok: true, address: "127.0.0.1" });
    expect(await policy.decide({ host: "127.1", port: 8000 }, cp)).toEqual({ ok: true, address: "127.0.0.1" });
    expect(await policy.decide({ host: "ok.example.test", port: 443 }, cp)).toEqual({ ok: true, address: "203.0.113.10" });
  });

  it("docker ports, operator subnets and operator address:port entries are denied in any form", async () => {
    expect(await policy.decide({ host: "127.0.0.1", port: 2375 }, cp)).toMatchObject({ ok: false, reason: "blocked_port" });
    expect(await policy.decide({ host: "0x0a630001", port: 22 }, cp)).toMatchObject({ ok: false, address: "10.99.0.1" });
    expect(await policy.decide({ host: "3405803796", port: 80 }, cp)).toEqual({ ok: false, reason: "blocked_port", address: "203.0.113.20" });
    expect(await policy.decide({ host: "203.0.113.20", port: 81 }, cp)).toEqual({ ok: true, address: "203.0.113.20" });
  });
});

describe("normaliseBindAddress (ssh -R)", () => {
  it.each([
    ["", ""],
    ["*", ""],
    ["0.0.0.0", ""],
    ["0", ""],
    ["::", ""],
    ["localhost", "localhost"],
    ["LOCALHOST", "localhost"],
    ["127.0.0.1", "127.0.0.1"],
    ["2130706433", "127.0.0.1"],
    ["127.1", "127.0.0.1"],
    ["0x7f.1", "127.0.0.1"],
    ["::1", "::1"],
    ["::ffff:127.0.0.1", "127.0.0.1"],
  ])("%j → %j", (text, want) => {
    expect(normaliseBindAddress(text)).toBe(want);
  });

  it.each(["169.254.169.254", "0xa9fea9fe", "172.30.0.1", "203.0.113.10", "attacker.example.test", "localhost.attacker.test", "2001:db8::1", "1.2.3.4.5"])(
    "%j is refused",
    (text) => {
      expect(normaliseBindAddress(text)).toBeNull();
    },
  );
});
