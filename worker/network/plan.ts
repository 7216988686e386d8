import { lookup } from "node:dns/promises";
import { eq } from "drizzle-orm";
import { hostEgressBindings, type HostRow } from "../../shared/db/schema/index.js";
import type { WorkerDeps } from "../deps.js";
import { TaskError } from "../tasks/task-error.js";
import { loadEgress, type EgressSecrets } from "./egress-source.js";
import { type GatewayConfig, renderGatewayFiles } from "./gateway-files.js";
import type { MachineGuard } from "./machine.js";
import type { MgmtSide } from "./rulesets.js";
import type { SingBoxOutbound } from "./v2ray.js";
import { isIpv4, NetworkValueError, parseHostPort } from "./values.js";

/**
 * Mode selection (docs/egress.md#modes) and the gateway configuration of a host or a test run, with
 * every endpoint name resolved (docs/egress.md#gateway "Endpoint names").
 */

/** What the verification of docs/egress.md#verification needs to know about the configuration it checks. */
export interface EgressExpectation {
  egressId: string;
  /** The declared `ip_address` (never modified). */
  ipAddress: string;
  /** DNS sources allowed besides EGRESS_DNS_ALLOWED_RESOLVERS: {ip_address, wg_dns_server | proxy server}. */
  allowedSources: string[];
}

export interface GatewayPlan {
  config: GatewayConfig;
  /** Present in wireguard and proxy modes. */
  egress: EgressExpectation | null;
  /** The bound egress, when there is one (also in blocked mode for a disabled egress). */
  boundEgressId: string | null;
}

export interface PlanContext {
  /** null for a test gateway, which has no management network (docs/egress.md#egress-test). */
  mgmt: MgmtSide | null;
  underlayGateway: string;
  /** The machine guard of every routed mode (./machine.ts); absent only in unit tests and benches. */
  guard?: MachineGuard;
}

/** Resolver of endpoint names (system resolver, first IPv4); replaceable in unit tests. */
export type NameResolver = (name: string) => Promise<string>;

export const systemResolver: NameResolver = async (name) => {
  const r = await lookup(name, { family: 4 });
  return r.address;
};

async function resolveHost(host: string, resolve: NameResolver, what: string): Promise<string> {
  if (isIpv4(host)) return host;
  let address: string | undefined;
  try {
    address = await resolve(host);
  } catch {
    address = undefined;
  }
  if (!address || !isIpv4(address)) throw new TaskError("tunnel_setup_failed", `the ${what} name could not be resolved to an IPv4 address`);
  return address;
}

/** The gateway configuration of an available egress (wireguard or proxy mode). */
export async function egressConfig(
  deps: Pick<WorkerDeps, "config">,
  egress: EgressSecrets,
  ctx: PlanContext,
  resolve: NameResolver = systemResolver,
): Promise<{ config: GatewayConfig; expectation: EgressExpectation }> {
  try {
    if (egress.tunnelType === "wireguard") {
      const wg = egress.wg;
      if (!wg) throw new NetworkValueError("the WireGuard egress has no WireGuard settings");
      const ep = parseHostPort(wg.endpoint, "wg_endpoint");
      const endpoint = await resolveHost(ep.host, resolve, "WireGuard endpoint");
      const config: GatewayConfig = {
        mode: "wireguard",
        mgmt: ctx.mgmt,
        underlayGateway: ctx.underlayGateway,
        ...guardOf(ctx),
        privateKey: wg.privateKey,
        peerPublicKey: wg.publicKey,
        presharedKey: wg.presharedKey,
        endpoint,
        endpointPort: ep.port,
        allowedIps: wg.allowedIps,
        address: wg.peerAddress,
        dns: wg.dnsServer,
        mtu: deps.config.EGRESS_WG_MTU,
        implementation: deps.config.WIREGUARD_IMPLEMENTATION,
      };
      renderGatewayFiles(config, 0); // every value validated now: a bad one is the egress's fault
      return {
        config,
        expectation: { egressId: egress.id, ipAddress: egress.ipAddress, allowedSources: uniq([egress.ipAddress, wg.dnsServer]) },
      };
    }
    const proxy = egress.proxy;
    if (!proxy) throw new NetworkValueError("the proxy egress has no proxy_config");
    const outbound = proxy.config as unknown as SingBoxOutbound;
    if (typeof outbound.server !== "string") throw new NetworkValueError("proxy_config.server is missing");
    const server = await resolveHost(outbound.server, resolve, "proxy server");
    const config: GatewayConfig = {
      mode: "proxy",
      mgmt: ctx.mgmt,
      underlayGateway: ctx.underlayGateway,
      ...guardOf(ctx),
      outbound,
      server,
      dns: proxy.dnsServer ?? defaultDnsServer(deps),
    };
    renderGatewayFiles(config, 0);
    return { config, expectation: { egressId: egress.id, ipAddress: egress.ipAddress, allowedSources: uniq([egress.ipAddress, server]) } };
  } catch (err) {
    if (err instanceof NetworkValueError) throw new TaskError("tunnel_setup_failed", `the egress configuration cannot be used: ${err.message}`);
    throw err;
  }
}

const uniq = (xs: string[]) => [...new Set(xs)];
/**
 * EGRESS_DEFAULT_DNS_SERVER. The configuration requires it with EGRESS_UNBOUND_POLICY=direct and
 * with the egress checks, so it is missing only where no egress can be verified either.
 */
function defaultDnsServer(deps: Pick<WorkerDeps, "config">): string {
  const dns = deps.config.EGRESS_DEFAULT_DNS_SERVER;
  if (!dns) throw new TaskError("egress_checks_not_configured", "EGRESS_DEFAULT_DNS_SERVER is not set (it comes with the egress check variables)");
  return dns;
}

/** Spread into a config: no `guard` key at all when the context has none (configs compare equal). */
const guardOf = (ctx: PlanContext) => (ctx.guard ? { guard: ctx.guard } : {});

/**
 * The mode of a host's gateway (docs/egress.md#modes). `at: "start"` applies EGRESS_REQUIRED and
 * EGRESS_UNBOUND_POLICY; `at: "apply"` (a live apply while running) falls back to blocked for
 * anything but an available binding: an unbind or a disabled egress cuts the host off until its
 * next start, whatever the policy says.
 */
export async function planForHost(
  deps: WorkerDeps,
  host: Pick<HostRow, "id">,
  at: "start" | "apply",
  ctx: PlanContext,
  resolve: NameResolver = systemResolver,
): Promise<GatewayPlan> {
  const [binding] = await deps.db
    .select({ egressIpId: hostEgressBindings.egressIpId, quarantinedAt: hostEgressBindings.quarantinedAt })
    .from(hostEgressBindings)
    .where(eq(hostEgressBindings.hostId, host.id));
  // A binding whose last attestation failed stays blocked through every start, apply and repair
  // until an attestation passes again (docs/egress.md#attestation): fail closed.
  if (binding?.quarantinedAt) return { config: { mode: "blocked", mgmt: ctx.mgmt }, egress: null, boundEgressId: binding.egressIpId };
  const egress = binding ? await loadEgress(deps, binding.egressIpId) : null;
  const required = at === "start" && deps.config.EGRESS_REQUIRED;
  if (egress && egress.status === "available") {
    const { config, expectation } = await egressConfig(deps, egress, ctx, resolve);
    return { config, egress: expectation, boundEgressId: egress.id };
  }
  if (required) throw new TaskError("egress_binding_missing", "EGRESS_REQUIRED is set and the host has no usable egress binding");
  if (!egress && at === "start" && deps.config.EGRESS_UNBOUND_POLICY === "direct") {
    return {
      config: { mode: "direct", mgmt: ctx.mgmt, underlayGateway: ctx.underlayGateway, ...guardOf(ctx), dns: defaultDnsServer(deps) },
      egress: null,
      boundEgressId: null,
    };
  }
  return { config: { mode: "blocked", mgmt: ctx.mgmt }, egress: null, boundEgressId: egress?.id ?? null };
}
