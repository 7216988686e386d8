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

export interface Probe {
  http(url: string, timeoutSeconds: number): Promise<HttpProbe>;
  dns(server: string, name: string, proto: "udp" | "tcp", timeoutSeconds: number): Promise<DnsProbe>;
  dnsCheck(label: string, domain: string, forbidden: string, timeoutSeconds: number): Promise<DnsCheckProbe>;
  remove(): Promise<void>;
}

const NO_HTTP: HttpProbe = { ok: false, code: 0, latency_ms: null, body: "", error: "probe_failed" };
const NO_DNS: DnsProbe = { server: null, responded: false, addresses: [] };

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
  const run = async (argv: string[], timeoutSeconds: number): Promise<unknown> => {
    const r = await deps.runtime
      .exec(name, ["/usr/local/bin/ccp-probe", ...argv], { user: PROBE_USER, timeoutMs: (timeoutSeconds + 25) * 1000 })
      .catch(() => null);
    if (!r || r.exitCode !== 0) return null;
    try {
      return JSON.parse(r.stdout.trim());
    } catch {
      return null;
    }
  };
  return {
    async http(url, t) {
      const out = (await run(["http", url, String(t)], t)) as (Omit<HttpProbe, "body"> & { body_b64: string }) | null;
      if (!out) return NO_HTTP;
      return {
        ok: out.ok === true,
        code: Number(out.code) || 0,
        latency_ms: typeof out.latency_ms === "number" ? out.latency_ms : null,
        body: Buffer.from(out.body_b64 ?? "", "base64").toString("utf8"),
        error: out.error ?? null,
      };
    },
    async dns(server, n, proto, t) {
      return ((await run(["dns", server, n, proto, String(t)], t)) as DnsProbe | null) ?? NO_DNS;
    },
    async dnsCheck(label, domain, forbidden, t) {
      const out = (await run(["dns-check", label, domain, forbidden, String(t)], t)) as DnsCheckProbe | null;
      return out ?? { resolver: null, udp: NO_DNS, tcp: NO_DNS, system: { addresses: [] }, forbidden: NO_DNS };
    },
    async remove() {
      await deps.runtime.removeContainer(name);
    },
  };
}
