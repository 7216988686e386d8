/**
 * Idle stop and wake end to end (docs/idle.md) with real containers and the real OpenSSH client:
 * a host with a 1-minute policy is stopped by the idle scan (driven by hand: its idle window is
 * moved into the past instead of waiting a minute), then `ssh` through the proxy wakes it, shows
 * the progress on stderr (authentication banners), and runs a command.
 */
import { waitUntil } from "../../shared/test/processes.js";
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { type SshdHarness, sshEnv, startTestSshd } from "../../shared/test/sshd-harness.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { runIdleScan } from "../../worker/schedulers/idle.js";

let h: ApiHarness;
let w: WorkerHarness;
let s: SshdHarness;
let admin: string;
let hostId: string;
let shortId: string;
let password: string;

beforeAll(async () => {
  h = await createApiHarness();
  // The scheduler never fires by itself here: the test runs the scan.
  w = await startTestWorker(h, { IDLE_SCAN_INTERVAL_SECONDS: "86400" });
  s = await startTestSshd(h, { WAKE_TIMEOUT_SECONDS: "90" });
  admin = await h.adminToken();
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  hostId = res.body.host.id;
  shortId = res.body.host.short_id;
  expect((await waitForTask(h, res.body.task_id)).status).toBe("succeeded");
  const rot = await h.request("POST", `/v1/admin/hosts/${hostId}/rotate-ssh-password`, { token: admin });
  password = rot.body.ssh_password;
});
afterAll(async () => {
  await s?.stop();
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

/** A condition polled until it holds, within a deadline (shared/test/processes.ts waitUntil). */
const waitFor = <T>(what: string, fn: () => Promise<T | null | undefined | false>, ms: number): Promise<T> =>
  waitUntil(what, ms, async () => (await fn()) || undefined);

/** The real OpenSSH client at LogLevel INFO (its default), so authentication banners are printed. */
function sshRun(command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = [
    "-F", "/dev/null",
    "-p", String(s.port),
    "-o", `UserKnownHostsFile=${s.knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "BatchMode=no",
    "-o", "ConnectTimeout=10",
    "-o", "LogLevel=INFO",
    "-o", "PubkeyAuthentication=no",
    "-o", "PreferredAuthentications=password",
    "-o", "NumberOfPasswordPrompts=1",
    `${shortId}@127.0.0.1`,
    command,
  ];
  return new Promise((resolve) => {
    const env = sshEnv(s, { login: shortId, password });
    delete env.SSH_AUTH_SOCK;
    const child = spawn("ssh", argv, { env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 110_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
    });
  });
}

const hostRow = async () => {
  const [row] = await h.database.sql<{ status: string; desired_state: string; idle_stopped_at: Date | null }[]>`
    select status, desired_state, idle_stopped_at from hosts where id = ${hostId}`;
  return row!;
};

describe("idle stop and wake (real engine, real ssh)", () => {
  it("stops an idle host (system:idle), then an ssh login wakes it and runs the command", { timeout: 120_000 }, async () => {
    const patch = await h.request("PATCH", `/v1/admin/hosts/${hostId}`, { token: admin, body: { idle_stop_minutes: 1 } });
    expect(patch.status, patch.text).toBe(200);

    // Each round: the idle window as if it began two minutes ago, then one scan. The first scan
    // only takes the CPU baseline; the host may still be busy settling (sshd, the desktop), so
    // rounds repeat until its CPU is under the threshold over one interval.
    const stopped = await waitFor(
      "the idle scan to stop the host",
      async () => {
        await h.database.sql`update hosts set last_active_at = now() - interval '2 minutes' where id = ${hostId}`;
        return (await runIdleScan(w.deps)).idle_stopped === 1;
      },
      60_000,
    );
    expect(stopped).toBe(true);
    const [stop] = await h.database.sql<{ id: string; requested_by: string }[]>`
      select id, requested_by from tasks where host_id = ${hostId} and kind = 'host.stop'`;
    expect(stop!.requested_by).toBe("system:idle");
    expect((await waitForTask(h, stop!.id)).status).toBe("succeeded");
    expect(await hostRow()).toMatchObject({ status: "stopped", desired_state: "stopped" });
    const ev = await h.request("GET", `/v1/admin/events?type=host.idle_stopped&host_id=${hostId}`, { token: admin });
    expect(ev.body.events).toHaveLength(1);
    expect(ev.body.events[0].metadata).toMatchObject({ policy_minutes: 1, memory_limit_mb: 4096 });
    expect(ev.body.events[0].metadata.cpu_percent).toBeLessThan(5);

    // The login wakes it: progress on stderr, then the command runs.
    const r = await sshRun("echo woke-$((6*7))");
    expect(r.stdout.trim(), r.stderr).toBe("woke-42");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`Host ${shortId} was stopped while idle: waking it up...`);
    expect(r.stderr).toMatch(/waking your host\.\.\. \d+%/);
    expect(r.stderr).toContain(`Host ${shortId} is up`);
    expect(await hostRow()).toMatchObject({ status: "running", desired_state: "running", idle_stopped_at: null });
    const [start] = await h.database.sql<{ requested_by: string; payload: Record<string, unknown> }[]>`
      select requested_by, payload from tasks where host_id = ${hostId} and kind = 'host.start'`;
    expect(start).toMatchObject({ requested_by: "system:wake", payload: { woken_by: "ssh" } });
    const woken = await h.request("GET", `/v1/admin/events?type=host.woken&host_id=${hostId}`, { token: admin });
    expect(woken.body.events).toHaveLength(1);
    expect(woken.body.events[0].metadata.via).toBe("ssh");
    expect(woken.body.events[0].metadata.duration_ms).toBeGreaterThan(0);

    // A running host: no banner, straight in.
    const again = await sshRun("echo again");
    expect(again.stdout.trim()).toBe("again");
    expect(again.stderr).not.toContain("waking");
  });
});
