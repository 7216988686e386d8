import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { waitUntil } from "../../shared/test/processes.js";
import { type SshdHarness, ssh, startTestSshd } from "../../shared/test/sshd-harness.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";

/**
 * The worker's and the SSH proxy's own /metrics listeners (README "Observability"), scraped over
 * HTTP while a real host is created by the real worker and reached through the real proxy with
 * the OpenSSH client.
 */

let h: ApiHarness;
let w: WorkerHarness;
let s: SshdHarness;
let shortId: string;
let sshPassword: string;

const scrape = async (port: number | null) => {
  expect(port).not.toBeNull();
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
};

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h, { WORKER_METRICS_LISTEN_ADDR: "127.0.0.1:0" });
  s = await startTestSshd(h, { SSHD_METRICS_LISTEN_ADDR: "127.0.0.1:0" });
  const admin = await h.adminToken();
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  shortId = res.body.host.short_id;
  expect((await waitForTask(h, res.body.task_id)).status).toBe("succeeded");
  const rot = await h.request("POST", `/v1/admin/hosts/${res.body.host.id}/rotate-ssh-password`, { token: admin });
  sshPassword = rot.body.ssh_password;
});
afterAll(async () => {
  await s?.stop();
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

describe("the worker's metrics listener", () => {
  it("times the task by kind and outcome and counts the egress verification", async () => {
    const text = await scrape(w.metricsPort);
    expect(text).toMatch(/^ccp_build_info\{version="[^"]+",process="worker"\} 1$/m);
    expect(text).toContain("# TYPE process_resident_memory_bytes gauge");
    expect(sample(text, 'ccp_task_duration_seconds_count{kind="host.create",outcome="succeeded"}'), text).toBe(1);
    // An unbound host is blocked (EGRESS_UNBOUND_POLICY's default): its isolation check passed.
    expect(sample(text, 'ccp_egress_verifications_total{kind="verify",mode="blocked",result="passed"}'), text).toBe(1);
  });
});

describe("the SSH proxy's metrics listener", () => {
  it("counts logins, the open session and the bytes it relayed", async () => {
    const before = await scrape(s.metricsPort);
    const outBefore = sample(before, 'ccp_ssh_bytes_total{direction="out"}') ?? NaN;
    const inBefore = sample(before, 'ccp_ssh_bytes_total{direction="in"}') ?? NaN;
    // A session that stays open until the proxy closes it: the gauge and the bytes are read live.
    const session = ssh(s, {
      login: shortId,
      password: sshPassword,
      args: ["cat >/dev/null; head -c 200000 /dev/zero; sleep 60"],
      stdin: "x".repeat(50_000),
      timeoutMs: 90_000,
    });
    await waitUntil("the open session and its bytes in the scrape", 30_000, async () => {
      const t = await scrape(s.metricsPort);
      return sample(t, "ccp_ssh_sessions_open") === 1 &&
        (sample(t, 'ccp_ssh_bytes_total{direction="out"}') ?? 0) >= outBefore + 200_000 &&
        (sample(t, 'ccp_ssh_bytes_total{direction="in"}') ?? 0) >= inBefore + 50_000
        ? true
        : undefined;
    });
    s.deps.sessions.closeWhere(() => true, "test_over");
    await session;
    await waitUntil("the session to be closed in the scrape", 30_000, async () =>
      sample(await scrape(s.metricsPort), "ccp_ssh_sessions_open") === 0 ? true : undefined,
    );
    expect((await ssh(s, { login: shortId, password: "wrong-password", args: ["true"] })).code).toBe(255);
    const after = await scrape(s.metricsPort);
    expect(sample(after, 'ccp_ssh_auth_total{method="password",result="success"}'), after).toBe(1);
    expect(sample(after, 'ccp_ssh_auth_total{method="password",result="failure"}'), after).toBe(1);
  });
});
