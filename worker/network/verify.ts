import { randomBytes } from "node:crypto";
import type { EgressChecksConfig } from "../../shared/config/worker.js";
import type { WorkerDeps } from "../deps.js";
import { TaskError, type TaskErrorCode } from "../tasks/task-error.js";
import { canarySources, type CanaryFetch } from "./canary.js";
import type { EgressExpectation } from "./plan.js";
import { type DnsCheckProbe, type HttpProbe, type Probe, startProbe } from "./probe.js";
import { canonicalIp, inAnyCidr, isIpv4 } from "./values.js";

/**
 * The verification of docs/egress.md#verification: connectivity, exit IP and DNS-leak checks from a probe in
 * the gateway's namespace (wireguard and proxy modes), and the isolation check of blocked mode.
 * The verdict is computed by `evaluateChecks` (pure), from what the probe and the canary observed.
 */

export interface CheckResults {
  connectivity: { status: "pass" | "fail"; latency_ms: number | null; error?: string };
  exit_ip: { status: "pass" | "fail"; expected: string; observed: string | null; error?: string };
  dns_leak: { status: "pass" | "fail"; resolvers_seen: string[]; error?: string };
}

export interface Verdict {
  status: "passed" | "failed";
  error_code: TaskErrorCode | null;
  results: CheckResults;
}

type Cidr = { address: string; prefix: number; family?: 4 | 6 };

export interface DnsObservation {
  /** u<r> (UDP), t<r> (TCP) at the resolver of the resolver file, g<r> (system resolver). */
  names: { name: string; via: "udp" | "tcp" | "system"; resolved: boolean; sources: string[] | null }[];
  /** f<r> sent straight to EGRESS_CHECK_FORBIDDEN_RESOLVER got an answer. */
  forbiddenAnswered: boolean;
}

export interface CheckInputs {
  checkUrl: string;
  expectedIp: string;
  connectivity: HttpProbe;
  echo: HttpProbe;
  dns: DnsObservation;
  /** IPv4 sources allowed for the egress ({ip_address, wg_dns_server | proxy server}). */
  allowed: string[];
  /** EGRESS_DNS_ALLOWED_RESOLVERS. */
  allowedCidrs: Cidr[];
  /** The gateway's underlay address and the underlay network's gateway. */
  underlay: string[];
  /** EGRESS_UNDERLAY_PUBLIC_IPS. */
  underlayCidrs: Cidr[];
}

/** The caller's address in an echo answer: plain text (trimmed) or JSON with an `ip` key. */
export function parseEcho(body: string): string | null {
  const text = body.trim();
  if (!text) return null;
  if (text.startsWith("{")) {
    try {
      const ip = (JSON.parse(text) as { ip?: unknown }).ip;
      return typeof ip === "string" ? canonicalIp(ip) : null;
    } catch {
      return null;
    }
  }
  return canonicalIp(text);
}

const host32 = (ip: string): Cidr => ({ address: ip, prefix: 32, family: 4 });

export function evaluateChecks(i: CheckInputs): Verdict {
  // connectivity: a 2xx answer (204 included).
  const connectivity: CheckResults["connectivity"] = i.connectivity.ok
    ? { status: "pass", latency_ms: i.connectivity.latency_ms }
    : {
        status: "fail",
        latency_ms: i.connectivity.code ? i.connectivity.latency_ms : null,
        error: i.connectivity.code
          ? `GET ${i.checkUrl} answered HTTP ${i.connectivity.code}`
          : `GET ${i.checkUrl} got no answer through the egress`,
      };

  // exit_ip: the echo's answer equals the declared ip_address (canonical forms).
  const expected = canonicalIp(i.expectedIp) ?? i.expectedIp;
  const observed = i.echo.code >= 200 && i.echo.code < 300 ? parseEcho(i.echo.body) : null;
  const exit_ip: CheckResults["exit_ip"] =
    observed === null
      ? { status: "fail", expected, observed: null, error: "the IP echo service gave no usable answer through the egress" }
      : observed === expected
        ? { status: "pass", expected, observed }
        : { status: "fail", expected, observed, error: `exit IP ${observed} does not match the declared ip_address ${expected}` };

  // dns_leak: every name resolved and seen by the canary, only from allowed sources; the
  // forbidden resolver never answered.
  const allowed = [...i.allowed.filter(isIpv4).map(host32), ...i.allowedCidrs];
  const underlay = [...i.underlay.filter(isIpv4).map(host32), ...i.underlayCidrs];
  const seen = new Set<string>();
  for (const n of i.dns.names) for (const s of n.sources ?? []) seen.add(s);
  const resolvers_seen = [...seen].sort();
  const disallowed = resolvers_seen.filter((s) => inAnyCidr(s, underlay) || !inAnyCidr(s, allowed));
  const unresolved = i.dns.names.filter((n) => !n.resolved);
  const answeredUnseen = i.dns.names.filter((n) => n.resolved && !(n.sources && n.sources.length > 0));
  const problems: string[] = [];
  if (disallowed.length) problems.push(`DNS queries reached the canary from ${disallowed.join(", ")}, outside the egress`);
  if (answeredUnseen.length) {
    problems.push(`${answeredUnseen.map((n) => n.via).join(", ")} lookup answered without reaching the canary (another resolver answered)`);
  }
  if (i.dns.forbiddenAnswered) problems.push("the forbidden resolver answered a query sent straight to it");
  const leak = problems.length > 0;
  if (unresolved.length) problems.unshift(`${unresolved.map((n) => n.via).join(", ")} lookup did not resolve`);
  const dns_leak: CheckResults["dns_leak"] = problems.length
    ? { status: "fail", resolvers_seen, error: problems.join("; ") }
    : { status: "pass", resolvers_seen };

  const results: CheckResults = { connectivity, exit_ip, dns_leak };
  // First match wins (docs/egress.md#verification).
  let error_code: TaskErrorCode | null = null;
  if (connectivity.status === "fail" || exit_ip.observed === null || (unresolved.length > 0 && disallowed.length === 0)) {
    error_code = "egress_unreachable";
  } else if (exit_ip.status === "fail") {
    error_code = "egress_ip_mismatch";
  } else if (dns_leak.status === "fail") {
    error_code = leak ? "dns_leak" : "egress_unreachable";
  }
  return { status: error_code ? "failed" : "passed", error_code, results };
}

/** 16 characters of [a-z0-9], fresh for every check. */
export function randomLabel(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return [...randomBytes(16)].map((b) => alphabet[b % alphabet.length]).join("");
}

/** A verdict with every check "not run" (infrastructure failures, docs/api.md#egress-test-api). */
export function notRunVerdict(code: TaskErrorCode, why: string, expectedIp: string): Verdict {
  const error = `not run: ${why}`;
  return {
    status: "failed",
    error_code: code,
    results: {
      connectivity: { status: "fail", latency_ms: null, error },
      exit_ip: { status: "fail", expected: canonicalIp(expectedIp) ?? expectedIp, observed: null, error },
      dns_leak: { status: "fail", resolvers_seen: [], error },
    },
  };
}

export interface ChecksTarget {
  taskId: string;
  /** The container whose namespace the probe joins (ccp-gw-<hostId> or ccp-gwtest-<taskId>). */
  gatewayName: string;
  expectation: EgressExpectation;
  /** The gateway's underlay address and the underlay network's gateway. */
  underlay: string[];
}

export interface CheckOptions {
  canaryFetch?: CanaryFetch;
  /** Overall bound (default EGRESS_TOTAL_TIMEOUT_SECONDS), e.g. what is left of a test's budget. */
  totalMs?: number;
  /**
   * The probe, when the caller started it already (an egress test starts it while its gateway's
   * engine comes up: it only holds until the checks exec in it); the caller then removes it too.
   * Default: started and removed here.
   */
  probe?: Promise<Probe>;
}

export const CHECKS_NOT_CONFIGURED_MESSAGE =
  "the worker has no egress check endpoints: set EGRESS_CHECK_URL, EGRESS_ECHO_URL, EGRESS_DNS_CANARY_DOMAIN, " +
  "EGRESS_DNS_CANARY_API, EGRESS_DNS_CANARY_API_SECRET and EGRESS_CHECK_FORBIDDEN_RESOLVER (a checkd service)";

/** The check endpoints, or the task fails with egress_checks_not_configured (an egress is never taken as verified). */
export function requireChecks(cfg: Pick<WorkerDeps["config"], "EGRESS_CHECKS">): EgressChecksConfig {
  if (!cfg.EGRESS_CHECKS) throw new TaskError("egress_checks_not_configured", CHECKS_NOT_CONFIGURED_MESSAGE);
  return cfg.EGRESS_CHECKS;
}

/** Run the three checks concurrently in a probe (each ≤ EGRESS_CHECK_TIMEOUT_SECONDS). */
export async function runEgressChecks(deps: Pick<WorkerDeps, "runtime" | "config">, t: ChecksTarget, opts: CheckOptions = {}): Promise<Verdict> {
  const cfg = deps.config;
  const checks = requireChecks(cfg);
  const total = Math.max(1000, opts.totalMs ?? cfg.EGRESS_TOTAL_TIMEOUT_SECONDS * 1000);
  let probe: Probe | null = null;
  let timer: NodeJS.Timeout | undefined;
  const work = async (): Promise<Verdict> => {
    probe = await (opts.probe ?? startProbe(deps, t.taskId, t.gatewayName));
    const T = cfg.EGRESS_CHECK_TIMEOUT_SECONDS;
    const label = randomLabel();
    const domain = checks.canaryDomain;
    // DNS: the canary is polled for the three names while the probe looks them up, and for up
    // to 2 s after the probe is done (canarySources `until`), within the check's own bound.
    const dnsTimeout = Math.max(1, T - 3);
    const names = [
      { name: `u${label}.${domain}`, via: "udp" as const },
      { name: `t${label}.${domain}`, via: "tcp" as const },
      { name: `g${label}.${domain}`, via: "system" as const },
    ];
    const observe = (probeDone: Promise<unknown>) =>
      Promise.all(
        names.map((n) =>
          canarySources({ url: checks.canaryApi, secret: checks.canaryApiSecret }, n.name, { maxWaitMs: 2000, fetcher: opts.canaryFetch, until: probeDone }),
        ),
      );
    const dnsObservation = (d: DnsCheckProbe, sources: (string[] | null)[]): DnsObservation => {
      const resolved = { udp: d.udp.addresses.length > 0, tcp: d.tcp.addresses.length > 0, system: d.system.addresses.length > 0 };
      return {
        names: names.map((n, k) => ({ ...n, resolved: resolved[n.via], sources: sources[k] ?? null })),
        forbiddenAnswered: d.forbidden.responded,
      };
    };
    // One exec runs the three probes at once (the forbidden resolver is rejected by the kill
    // switch, so it does not hold the others up: docs/egress.md#reject); an older gateway image
    // gets one exec per check.
    const allExec = probe.checks(checks.checkUrl, checks.echoUrl, label, domain, checks.forbiddenResolver, T, dnsTimeout);
    const early = observe(allExec);
    const all = await allExec;
    let connectivity: HttpProbe, echo: HttpProbe, dns: DnsObservation;
    if (all) {
      ({ connectivity, echo } = all);
      dns = dnsObservation(all.dns, await early);
    } else {
      // (The early polls of names nobody looked up end on their own, 2 s on.)
      early.catch(() => {});
      const dnsExec = probe.dnsCheck(label, domain, checks.forbiddenResolver, dnsTimeout);
      const [c, e, d, sources] = await Promise.all([probe.http(checks.checkUrl, T), probe.http(checks.echoUrl, T), dnsExec, observe(dnsExec)]);
      [connectivity, echo, dns] = [c, e, dnsObservation(d, sources)];
    }
    return evaluateChecks({
      checkUrl: checks.checkUrl,
      expectedIp: t.expectation.ipAddress,
      connectivity,
      echo,
      dns,
      allowed: t.expectation.allowedSources,
      allowedCidrs: cfg.EGRESS_DNS_ALLOWED_RESOLVERS,
      underlay: t.underlay,
      underlayCidrs: cfg.EGRESS_UNDERLAY_PUBLIC_IPS,
    });
  };
  try {
    return await Promise.race([
      work(),
      new Promise<Verdict>((resolve) => {
        timer = setTimeout(
          () => resolve(notRunVerdictTimedOut(t.expectation.ipAddress, cfg.EGRESS_TOTAL_TIMEOUT_SECONDS)),
          total,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (!opts.probe) await deps.runtime.removeContainer(`ccp-probe-${t.taskId}`).catch(() => {});
  }
}

function notRunVerdictTimedOut(expectedIp: string, seconds: number): Verdict {
  const v = notRunVerdict("egress_unreachable", `the checks did not finish within ${seconds} s`, expectedIp);
  for (const r of Object.values(v.results)) r.error = `the checks did not finish within ${seconds} s`;
  return v;
}

export interface IsolationResult {
  passed: boolean;
  checks: {
    check_url: { reached: boolean; code: number };
    echo_url: { reached: boolean; code: number };
    forbidden_resolver: { answered: boolean };
  };
}

/**
 * Blocked mode (docs/egress.md#verification): GET EGRESS_CHECK_URL and GET EGRESS_ECHO_URL (3 s each) must both fail, and
 * a query straight to the forbidden resolver must get no answer (2 s). Any answer is a leak. The
 * bounds are only what silence would cost: the kill switch rejects all three at once.
 */
export async function runIsolationCheck(deps: Pick<WorkerDeps, "runtime" | "config">, taskId: string, gatewayName: string): Promise<IsolationResult> {
  const ep = requireChecks(deps.config);
  const probe = await startProbe(deps, taskId, gatewayName);
  try {
    const name = `f${randomLabel()}.${ep.canaryDomain}`;
    // One exec runs the three at once; the kill switch rejects them, so it returns in milliseconds
    // (docs/egress.md#reject).
    let seen = await probe.isolation(ep.checkUrl, ep.echoUrl, ep.forbiddenResolver, name);
    if (!seen) {
      const [c, e, f] = await Promise.all([probe.http(ep.checkUrl, 3), probe.http(ep.echoUrl, 3), probe.dns(ep.forbiddenResolver, name, "udp", 2)]);
      seen = { check: c, echo: e, forbidden: f };
    }
    const { check, echo, forbidden } = seen;
    // A failed probe exec would read as "nothing reached": an infrastructure error, never a pass.
    if (check.error === "probe_failed" || echo.error === "probe_failed" || forbidden.server === null) {
      throw new Error("the isolation probe did not run");
    }
    const checks = {
      check_url: { reached: check.code > 0, code: check.code },
      echo_url: { reached: echo.code > 0, code: echo.code },
      forbidden_resolver: { answered: forbidden.responded },
    };
    return { passed: !checks.check_url.reached && !checks.echo_url.reached && !checks.forbidden_resolver.answered, checks };
  } finally {
    await probe.remove().catch(() => {});
  }
}
