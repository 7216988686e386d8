import { existsSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { gunzipSync } from "node:zlib";

/**
 * Which WireGuard implementation this machine's gateways use (docs/egress.md#wireguard-implementation).
 *
 * A gateway decides for itself at every start (ccp-gateway: `ip link add wg0 type wireguard` in its
 * own namespace, else wireguard-go) and says which in its status (`engine`). The worker, which
 * shares the machine's kernel with its gateways, tells the same answer in its heartbeat so /healthz
 * can show it without a host: WIREGUARD_IMPLEMENTATION when it forces one; otherwise the kernel's
 * own record — the module loaded (/sys/module/wireguard), or its module file or build option
 * present, which the gateway's `ip link add` loads on demand — else "userspace"; "unknown" when
 * the worker cannot see any of them (a container without the host's /lib/modules).
 */
export type WireguardImplementation = "kernel" | "userspace" | "unknown";
export type WireguardSetting = "auto" | "kernel" | "userspace";

/** The files the answer depends on, read through this (tests pass their own). */
export interface KernelView {
  exists(path: string): boolean;
  /** The file's text, or null when it cannot be read; `.gz` files are decompressed. */
  read(path: string): string | null;
  release: string;
}

export const hostKernel: KernelView = {
  exists: existsSync,
  read: (path) => {
    try {
      const raw = readFileSync(path);
      return (path.endsWith(".gz") ? gunzipSync(raw) : raw).toString("utf8");
    } catch {
      return null;
    }
  },
  release: release(),
};

export function detectWireguard(setting: WireguardSetting, kernel: KernelView = hostKernel): WireguardImplementation {
  if (setting !== "auto") return setting;
  if (kernel.exists("/sys/module/wireguard")) return "kernel";
  const dir = `/lib/modules/${kernel.release}`;
  for (const f of ["modules.builtin", "modules.dep"]) {
    const text = kernel.read(`${dir}/${f}`);
    if (text !== null && /(^|\/)wireguard\.ko/m.test(text)) return "kernel";
  }
  const config = kernel.read("/proc/config.gz") ?? kernel.read(`/boot/config-${kernel.release}`);
  if (config !== null) {
    if (/^CONFIG_WIREGUARD=[ym]$/m.test(config)) return "kernel";
    return "userspace";
  }
  // The module list was readable and has no WireGuard: the gateways will use wireguard-go.
  if (kernel.read(`${dir}/modules.dep`) !== null) return "userspace";
  return "unknown";
}

/** The gateway's `engine` word for a WireGuard engine, as the heartbeat's word (null: not WireGuard). */
export function implementationOfEngine(engine: string): WireguardImplementation | null {
  return engine === "kernel-wireguard" ? "kernel" : engine === "wireguard-go" ? "userspace" : null;
}
