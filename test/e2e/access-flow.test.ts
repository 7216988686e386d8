import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness, type TestUser } from "../../shared/test/api-harness.js";
import { freePort } from "../../shared/test/processes.js";
import { type SshdHarness, ssh, startTestSshd } from "../../shared/test/sshd-harness.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";

/**
 * A new user's way in, end to end: the served `curl … | bash` lines, run by bash under a real
 * terminal, through the real API, worker, containers and SSH proxy, with the real OpenSSH client.
 */
let h: ApiHarness;
let w: WorkerHarness;
let s: SshdHarness;
let server: ServerType;
let baseUrl: string;
let admin: string;
let work: string;

beforeAll(async () => {
  const apiPort = await freePort();
  const sshPort = await freePort();
  baseUrl = `http://127.0.0.1:${apiPort}`;
  h = await createApiHarness({ PUBLIC_BASE_URL: baseUrl, SSH_PUBLIC_HOST: "127.0.0.1", SSH_PUBLIC_PORT: String(sshPort) });
  w = await startTestWorker(h);
  s = await startTestSshd(h, { SSH_LISTEN_ADDR: `127.0.0.1:${sshPort}` });
  server = serve({ fetch: h.app.fetch, port: apiPort, hostname: "127.0.0.1" });
  admin = await h.adminToken();
  work = mkdtempSync(join(tmpdir(), "ccp-e2e-"));
});

afterAll(async () => {
  server?.close();
  await s?.stop();
  await w?.stop();
  removeInstanceObjects(h.prefix);
  await h?.close();
  rmSync(work, { recursive: true, force: true });
});

async function userWithHost(): Promise<TestUser & { hostId: string; shortId: string }> {
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect((await waitForTask(h, res.body.task_id)).status).toBe("succeeded");
  return { ...u, hostId: res.body.host.id, shortId: res.body.host.short_id };
}

/** Run a command line under a pseudo-terminal and type `input` once `when` shows up in the output. */
function inTerminal(cmd: string, env: Record<string, string>, when: RegExp, input: string, timeoutMs = 120_000) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn("script", ["-qec", cmd, "/dev/null"], {
      env: { PATH: process.env.PATH, HOME: work, LANG: "C.UTF-8", TERM: "dumb", ...env },
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    let out = "";
    let typed = false;
    const onData = (d: Buffer) => {
      out += d.toString("utf8");
      if (!typed && when.test(out)) {
        typed = true;
        child.stdin.write(input);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    const timer = setTimeout(() => {
      out += "\n[test: timed out]";
      process.kill(-child.pid!, "SIGKILL");
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out: out.replace(/\r/g, "") });
    });
  });
}

// The remote shell's prompt (bash in the host) shows the short id as the host name.
const promptOf = (shortId: string) => new RegExp(`workspace@${shortId}[^\\n]*\\$ $`, "m");

describe("curl … | bash lands in a shell on the host", () => {
  it("bootstrap script: starts a stopped host, then connects with a one-time ticket", async () => {
    const u = await userWithHost();
    const stop = await h.request("POST", `/v1/admin/hosts/${u.hostId}/stop`, { token: admin });
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
    const r = await inTerminal(
      `curl -sSf '${baseUrl}/v1/bootstrap/script' | bash`,
      { CCP_USERNAME: u.username, CCP_PASSWORD: u.password },
      promptOf(u.shortId),
      "echo E2E-$(id -un)-$(hostname); exit 0\n",
    );
    expect(r.out, r.out).toContain(`E2E-workspace-${u.shortId}`);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/SSH ready/);
    const [host] = await h.database.sql<{ status: string }[]>`select status from hosts where id = ${u.hostId}`;
    expect(host!.status).toBe("running");
  });

  it("entry script: a running host, with the owner's login password", async () => {
    const u = await userWithHost();
    const r = await inTerminal(
      `curl -sSf '${baseUrl}/entry/${u.shortId}' | bash`,
      { CCP_PASSWORD: u.password },
      promptOf(u.shortId),
      "echo ENTRY-$(id -un); exit 0\n",
    );
    expect(r.out, r.out).toContain("ENTRY-workspace");
    expect(r.code, r.out).toBe(0);
  });

  it("entry script: a stopped host is started, then the script connects", async () => {
    const u = await userWithHost();
    const stop = await h.request("POST", `/v1/admin/hosts/${u.hostId}/stop`, { token: admin });
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
    const r = await inTerminal(
      `curl -sSf '${baseUrl}/entry/${u.shortId}' | bash`,
      { CCP_PASSWORD: u.password },
      promptOf(u.shortId),
      "echo STARTED-$(id -un); exit 0\n",
    );
    expect(r.out, r.out).toContain("STARTED-workspace");
    expect(r.code, r.out).toBe(0);
  });
});

describe("bootstrap tickets at the proxy", () => {
  async function ticketFor(u: TestUser) {
    const sess = await h.request("POST", "/v1/bootstrap/sessions", { body: { username: u.username, password: u.password } });
    expect(sess.status, sess.text).toBe(200);
    await waitForTask(h, sess.body.task_id);
    const ho = await h.request("GET", `/v1/bootstrap/tasks/${sess.body.task_id}/handoff`);
    expect(ho.status, ho.text).toBe(200);
    return ho.body as { user: string; password: string; known_hosts_line: string };
  }

  it("a ticket logs in once, pinned by the handoff's known_hosts line; a second use fails", async () => {
    const u = await userWithHost();
    const t = await ticketFor(u);
    const kh = join(work, `kh-${t.user}`);
    writeFileSync(kh, `${t.known_hosts_line}\n`);
    const first = await ssh(s, { login: t.user, password: t.password, knownHosts: kh, args: ["echo ticket-ok"] });
    expect(first.stdout.trim(), first.stderr).toBe("ticket-ok");
    const second = await ssh(s, { login: t.user, password: t.password, knownHosts: kh, args: ["echo again"] });
    expect(second.code).toBe(255);
    expect(second.stdout).toBe("");
  });

  it("an unused ticket fails once expired", async () => {
    const u = await userWithHost();
    const t = await ticketFor(u);
    await h.database.sql`update ssh_tickets set expires_at = now() - interval '1 second' where host_id = ${u.hostId}`;
    const r = await ssh(s, { login: t.user, password: t.password, args: ["true"] });
    expect(r.code).toBe(255);
  });
});

describe("entry tickets at the proxy (issue 10 §5)", () => {
  it("an entry auth hands out a ticket, not the host password; it logs in once", async () => {
    const u = await userWithHost();
    const rot = await h.request("POST", `/v1/admin/hosts/${u.hostId}/rotate-ssh-password`, { token: admin });
    const sshPassword: string = rot.body.ssh_password;
    const res = await h.request("POST", `/v1/entry/${u.shortId}/auth`, { body: { password: u.password } });
    expect(res.status, res.text).toBe(200);
    expect(res.text).not.toContain(sshPassword);
    const kh = join(work, `kh-entry-${u.shortId}`);
    writeFileSync(kh, `${res.body.known_hosts_line}\n`);
    const first = await ssh(s, { login: res.body.ssh_user, password: res.body.ssh_ticket, knownHosts: kh, args: ["echo entry-ticket-ok"] });
    expect(first.stdout.trim(), first.stderr).toBe("entry-ticket-ok");
    const second = await ssh(s, { login: res.body.ssh_user, password: res.body.ssh_ticket, knownHosts: kh, args: ["echo again"] });
    expect(second.code).toBe(255);
    expect(second.stdout).toBe("");
  });
});
