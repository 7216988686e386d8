import { describe, expect, it } from "vitest";
import { type GatewayConfig, renderRoutingEnv } from "./gateway-files.js";
import { detectWireguard, implementationOfEngine, type KernelView } from "./wireguard-impl.js";

const kernel = (files: Record<string, string>, dirs: string[] = []): KernelView => ({
  exists: (p) => p in files || dirs.includes(p),
  read: (p) => files[p] ?? null,
  release: "6.1.0-test",
});

describe("detectWireguard", () => {
  it("follows WIREGUARD_IMPLEMENTATION when it forces one", () => {
    expect(detectWireguard("userspace", kernel({}, ["/sys/module/wireguard"]))).toBe("userspace");
    expect(detectWireguard("kernel", kernel({}))).toBe("kernel");
  });

  it("auto: the loaded module, a module file or the build option mean kernel", () => {
    expect(detectWireguard("auto", kernel({}, ["/sys/module/wireguard"]))).toBe("kernel");
    expect(detectWireguard("auto", kernel({ "/lib/modules/6.1.0-test/modules.dep": "kernel/drivers/net/wireguard/wireguard.ko: kernel/lib/x.ko\n" }))).toBe("kernel");
    expect(detectWireguard("auto", kernel({ "/lib/modules/6.1.0-test/modules.builtin": "kernel/drivers/net/wireguard/wireguard.ko\n" }))).toBe("kernel");
    expect(detectWireguard("auto", kernel({ "/proc/config.gz": "CONFIG_WIREGUARD=m\n" }))).toBe("kernel");
  });

  it("auto: a kernel built without it means userspace; nothing visible means unknown", () => {
    expect(detectWireguard("auto", kernel({ "/proc/config.gz": "# CONFIG_WIREGUARD is not set\n" }))).toBe("userspace");
    expect(detectWireguard("auto", kernel({ "/lib/modules/6.1.0-test/modules.dep": "kernel/net/ipv4/tunnel4.ko:\n" }))).toBe("userspace");
    expect(detectWireguard("auto", kernel({}))).toBe("unknown");
  });
});

describe("implementationOfEngine", () => {
  it("maps the gateway's engine word", () => {
    expect(implementationOfEngine("kernel-wireguard")).toBe("kernel");
    expect(implementationOfEngine("wireguard-go")).toBe("userspace");
    expect(implementationOfEngine("v2ray")).toBeNull();
  });
});

describe("routing.env WG_IMPL", () => {
  const wg: GatewayConfig = {
    mode: "wireguard",
    mgmt: { src: "172.20.0.1", net: "172.20.0.0/16" },
    underlayGateway: "203.0.113.1",
    privateKey: Buffer.alloc(32, 1).toString("base64"),
    peerPublicKey: Buffer.alloc(32, 2).toString("base64"),
    presharedKey: null,
    endpoint: "203.0.113.20",
    endpointPort: 51820,
    allowedIps: "0.0.0.0/0",
    address: "198.51.100.2/32",
    dns: "203.0.113.53",
    mtu: 1420,
  };

  it("is written only when WIREGUARD_IMPLEMENTATION forces an implementation", () => {
    expect(renderRoutingEnv(wg)).not.toContain("WG_IMPL");
    expect(renderRoutingEnv({ ...wg, implementation: "auto" })).not.toContain("WG_IMPL");
    expect(renderRoutingEnv({ ...wg, implementation: "userspace" })).toContain("WG_IMPL=userspace\n");
    expect(renderRoutingEnv({ ...wg, implementation: "kernel" })).toContain("WG_IMPL=kernel\n");
  });
});
