import { LABEL_MANAGED, LABEL_ROLE, LABEL_TASK_ID } from "../hosts/names.js";
import type { WorkerDeps } from "../deps.js";

/**
 * The probe container of docs/egress.md#verification: `ccp-probe-<taskId>` from GATEWAY_IMAGE in the
 * gateway's network namespace, user 65534, all capabilities dropped, no-new-privileges. Its
 * packets are unmarked and it reads the gateway's resolver file, so they take the path of host
 * traffic. The checks run in it with `docker exec` (fixed argv, `ccp-probe` in the image).
 */

export const probeName = (taskId: string) => `ccp-probe-${taskId}`;
export const PROBE_USER = "65534:65534";
/** The probe removes itself after this long even if the worker dies (the reconciler also reaps it). */
const PROBE_HOLD_SECONDS = 120;

export const ephemeralLabels = (role: "probe" | "gwtest", taskId: string): Record<string, string> => ({
  [LABEL_MANAGED]: "true",
  [LABEL_ROLE]: role,
  [LABEL_TASK_ID]: taskId,
});

export interface HttpProbe {
  ok: boolean;
  code: number;
  latency_ms: number | null;
  body: string;
  error: string | null;
}

export interface DnsProbe {
  server: string | null;
  responded: boolean;
  addresses: string[];
}

export interface DnsCheckProbe {
  resolver: string | null;
  udp: DnsProbe;
  tcp: DnsProbe;
  system: { addresses: string[] };
  forbidden: DnsProbe;
}

export interface IsolationProbe {
  check: HttpProbe;
  echo: HttpProbe;
  forbidden: DnsProbe;
}

export interface ChecksProbe {
  connectivity: HttpProbe;
  echo: HttpProbe;
  dns: DnsCheckProbe;
}

export interface Probe {
  http(url: string, timeoutSeconds: number): Promise<HttpProbe>;
  /**
   * Blocked mode's three probes in one exec (3 s, 3 s, 2 s bounds, run at once); null when the
   * gateway image predates `ccp-probe isolation` (the caller then runs them one exec each).
   */
  isolation(checkUrl: string, echoUrl: string, forbidden: string, name: string): Promise<IsolationProbe | null>;
  dns(server: string, name: string, proto: "udp" | "tcp", timeoutSeconds: number): Promise<DnsProbe>;
  dnsCheck(label: string, domain: string, forbidden: string, timeoutSeconds: number): Promise<DnsCheckProbe>;
  /**
   * A routed mode's checks in one exec, run at once: http(checkUrl), http(echoUrl) and dnsCheck;
   * null when the gateway image predates `ccp-probe checks` (the caller then runs them one exec
   * each).
   */
  checks(
    checkUrl: string,
    echoUrl: string,
    label: string,
    domain: string,
    forbidden: string,
    timeoutSeconds: number,
    dnsTimeoutSeconds: number,
  ): Promise<ChecksProbe | null>;
  remove(): Promise<void>;
}

const NO_HTTP: HttpProbe = { ok: false, code: 0, latency_ms: null, body: "", error: "probe_failed" };
const NO_DNS: DnsProbe = { server: null, responded: false, addresses: [] };

type RawHttp = (Omit<HttpProbe, "body"> & { body_b64: string }) | null | undefined;
const toHttp = (out: RawHttp): HttpProbe =>
  out
    ? {
        ok: out.ok === true,
        code: Number(out.code) || 0,
        latency_ms: typeof out.latency_ms === "number" ? out.latency_ms : null,
        body: Buffer.from(out.body_b64 ?? "", "base64").toString("utf8"),
        error: out.error ?? null,
      }
    : NO_HTTP;
const toDns = (out: DnsProbe | null | undefined): DnsProbe => (out && typeof out === "object" ? out : NO_DNS);
const NO_DNS_CHECK: DnsCheckProbe = { resolver: null, udp: NO_DNS, tcp: NO_DNS, system: { addresses: [] }, forbidden: NO_DNS };
/** An image older than the command asked for: its usage line, which does not name the command. */
const unknownCommand = (r: { exitCode: number; stderr: string } | null, command: string) =>
  r !== null && r.exitCode === 2 && r.stderr.includes("usage:") && !r.stderr.includes(command);

export async function startProbe(deps: Pick<WorkerDeps, "runtime" | "config">, taskId: string, joinContainer: string): Promise<Probe> {
  const name = probeName(taskId);
  await deps.runtime.createProbe({
    name,
    image: deps.config.GATEWAY_IMAGE,
    joinContainer,
    labels: ephemeralLabels("probe", taskId),
    entrypoint: ["/usr/local/bin/ccp-probe"],
    cmd: ["hold", String(PROBE_HOLD_SECONDS)],
    user: PROBE_USER,
  });
  // The check's own timeout is enforced inside ccp-probe; the exec around it only has to outlast
  // Docker. On a loaded engine (20 hosts booting on 2 cores) starting an exec alone took over 5 s,
  // and a probe that "did not run" fails the step: the margin is Docker's, not the check's.
  const exec = (argv: string[], timeoutSeconds: number) =>
    deps.runtime
      .exec(name, ["/usr/local/bin/ccp-probe", ...argv], { user: PROBE_USER, timeoutMs: (timeoutSeconds + 25) * 1000 })
      .catch(() => null);
  const parse = (r: Awaited<ReturnType<typeof exec>>): unknown => {
    if (!r || r.exitCode !== 0) return null;
    try {
      return JSON.parse(r.stdout.trim());
    } catch {
      return null;
    }
  };
  const run = async (argv: string[], timeoutSeconds: number): Promise<unknown> => parse(await exec(argv, timeoutSeconds));
  return {
    async http(url, t) {
      return toHttp((await run(["http", url, String(t)], t)) as RawHttp);
    },
    async isolation(checkUrl, echoUrl, forbidden, n) {
      const r = await exec(["isolation", checkUrl, echoUrl, forbidden, n], 3);
      if (unknownCommand(r, "isolation")) return null;
      const out = parse(r) as { check?: RawHttp; echo?: RawHttp; forbidden?: DnsProbe } | null;
      return { check: toHttp(out?.check), echo: toHttp(out?.echo), forbidden: toDns(out?.forbidden) };
    },
    async dns(server, n, proto, t) {
      return ((await run(["dns", server, n, proto, String(t)], t)) as DnsProbe | null) ?? NO_DNS;
    },
    async dnsCheck(label, domain, forbidden, t) {
      const out = (await run(["dns-check", label, domain, forbidden, String(t)], t)) as DnsCheckProbe | null;
      return out ?? NO_DNS_CHECK;
    },
    async checks(checkUrl, echoUrl, label, domain, forbidden, t, dt) {
      const r = await exec(["checks", checkUrl, echoUrl, label, domain, forbidden, String(t), String(dt)], Math.max(t, dt));
      if (unknownCommand(r, "checks")) return null;
      const out = parse(r) as { connectivity?: RawHttp; echo?: RawHttp; dns?: DnsCheckProbe } | null;
      return { connectivity: toHttp(out?.connectivity), echo: toHttp(out?.echo), dns: out?.dns ?? NO_DNS_CHECK };
    },
    async remove() {
      await deps.runtime.removeContainer(name);
    },
  };
}
