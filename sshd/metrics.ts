import { Counter, Gauge } from "prom-client";
import { createByteCounter, type ByteCounter, type Registry } from "../shared/metrics/registry.js";

export interface SshdMetrics {
  registry: Registry;
  /** `ccp_ssh_bytes_total{direction}`: bytes relayed (in = client to host), counted from each session's running totals. */
  bytes: ByteCounter;
  /**
   * `ccp_ssh_auth_total{method,result}`: method `password`, `ticket` or `publickey` (a signed
   * attempt; a key offered without a signature is only a query and not counted), result
   * `success` (credential proven), `failure` or `locked` (refused by the lockout before any check).
   */
  auth: Counter<"method" | "result">;
}

/** The SSH proxy's series (README "Observability"), on the process's registry. */
export function createSshdMetrics(registry: Registry, parts: { openSessions: () => number }): SshdMetrics {
  new Gauge({
    name: "ccp_ssh_sessions_open",
    help: "SSH sessions relayed by this proxy process right now",
    registers: [registry],
    collect() {
      this.set(parts.openSessions());
    },
  });
  return {
    registry,
    bytes: createByteCounter(registry, "ccp_ssh_bytes_total", "Bytes relayed by the SSH proxy: in = client to host, out = host to client"),
    auth: new Counter({
      name: "ccp_ssh_auth_total",
      help: "SSH authentication attempts by method (password, ticket, publickey) and result (success, failure, locked)",
      labelNames: ["method", "result"] as const,
      registers: [registry],
    }),
  };
}
