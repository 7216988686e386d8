/**
 * Connection caps of the SSH entry proxy (issue 10 §2), attacked through the real parts: the proxy
 * on a real loopback socket, a real worker with a real host container, raw TCP connections from
 * several loopback source addresses, and the real OpenSSH client.
 *
 * - unauthenticated connections per client address (SSH_MAX_UNAUTH_PER_IP) and in total
 *   (SSH_MAX_UNAUTH_TOTAL): beyond them a connection is closed at once, before the banner, while
 *   other addresses and real logins still get in; authenticating or closing frees the slot;
 * - the login grace period counts from the TCP accept: a client that never sends a byte is closed;
 * - `env` requests buffered before a session starts (SSH_MAX_PENDING_ENV_PER_SESSION and
 *   SSH_MAX_PENDING_ENV_BYTES): those beyond the caps are refused and never reach the host, and
 *   the session still works.
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { waitUntil } from "../../shared/test/processes.js";
import { type SshdHarness, startTestSshd } from "../../shared/test/sshd-harness.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";

let h: ApiHarness;
let w: WorkerHarness;
/** Per-address cap at its default (10), a total cap of 14, grace 30 s (silent probes stay). */
let sIp: SshdHarness;
/** A total cap of 4 (per address 10). */
let sTotal: SshdHarness;
/** Grace 2 s. */
let sGrace: SshdHarness;
/** Small env caps: 8 names per session, 4096 bytes per connection. */
let sEnv: SshdHarness;
let dir: string;
let shortId: string;
let password: string;
const BANNER = "SSH-2.0-cloud-cli-proxy";

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h);
  [sIp, sTotal, sGrace, sEnv] = await Promise.all([
    startTestSshd(h, { SSH_MAX_UNAUTH_TOTAL: "14" }),
    startTestSshd(h, { SSH_MAX_UNAUTH_TOTAL: "4" }),
    startTestSshd(h, { SSH_LOGIN_GRACE_SECONDS: "2" }),
    startTestSshd(h, { SSH_MAX_PENDING_ENV_PER_SESSION: "8", SSH_MAX_PENDING_ENV_BYTES: "4096" }),
  ]);
  dir = mkdtempSync(join(tmpdir(), "ccp-ssh-caps-"));
  writeFileSync(join(dir, "askpass"), '#!/bin/sh\nprintf "%s\\n" "$CCP_TEST_SECRET"\n');
  chmodSync(join(dir, "askpass"), 0o700);
  const admin = await h.adminToken();
  const user = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: user.id } });
  expect(res.status, res.text).toBe(202);
  const task = await waitForTask(h, res.body.task_id);
  expect(task.status, JSON.stringify(task)).toBe("succeeded");
  const rot = await h.request("POST", `/v1/admin/hosts/${res.body.host.id}/rotate-ssh-password`, { token: admin });
  expect(rot.status).toBe(200);
  shortId = res.body.host.short_id;
  password = rot.body.ssh_password;
});

afterAll(async () => {
  try {
    await Promise.all([sIp?.stop(), sTotal?.stop(), sGrace?.stop(), sEnv?.stop()]);
    await w?.stop();
  } finally {
    if (h) removeInstanceObjects(h.prefix);
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------

interface Probe {
  socket: net.Socket;
  /** Resolves with the server's first line once it arrived, or null when the connection closed without one. */
  banner: Promise<string | null>;
  /** Resolves when the connection closed (by either side). */
  closed: Promise<void>;
}

/** A raw TCP connection from `from` that sends nothing at all (a silent or slow client). */
function probe(s: SshdHarness, from: string): Probe {
  const socket = net.connect({ port: s.port, host: "127.0.0.1", localAddress: from });
  socket.on("error", () => {});
  let text = "";
  const banner = new Promise<string | null>((resolve) => {
    socket.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      if (text.includes("\r\n")) resolve(text.split("\r\n")[0]!);
    });
    socket.once("close", () => resolve(null));
  });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  return { socket, banner, closed };
}

async function within<T>(what: string, p: Promise<T>, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A probe that got its banner (admitted), or throws. */
async function admitted(s: SshdHarness, from: string): Promise<Probe> {
  const p = probe(s, from);
  expect(await within(`banner for ${from}`, p.banner)).toBe(BANNER);
  return p;
}

/** The real OpenSSH client, password through SSH_ASKPASS; resolves with the exit code and output. */
function ssh(
  s: SshdHarness,
  o: { bind: string; command: string[]; extra?: string[]; hold?: boolean },
): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; kill: () => void } {
  const argv = [
    "-F", "/dev/null",
    ...(o.extra ?? []),
    "-p", String(s.port),
    "-o", `BindAddress=${o.bind}`,
    "-o", `UserKnownHostsFile=${s.knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "BatchMode=no",
    "-o", "ConnectTimeout=10",
    "-o", "LogLevel=ERROR",
    "-o", "PubkeyAuthentication=no",
    "-o", "PreferredAuthentications=password",
    "-o", "NumberOfPasswordPrompts=1",
    `${shortId}@127.0.0.1`,
    ...o.command,
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, SSH_ASKPASS: join(dir, "askpass"), SSH_ASKPASS_REQUIRE: "force", DISPLAY: ":0", CCP_TEST_SECRET: password };
  delete env.SSH_AUTH_SOCK;
  const child = spawn("ssh", argv, { env, stdio: ["pipe", "pipe", "pipe"] });
  if (!o.hold) child.stdin.end();
  child.stdin.on("error", () => {});
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
  return { done, kill: () => child.kill("SIGTERM") };
}

const deniedLines = (s: SshdHarness) => s.logs.filter((l) => l.includes("too many unauthenticated connections"));

// ---------------------------------------------------------------------------------------------

describe("unauthenticated connections per address (SSH_MAX_UNAUTH_PER_IP, default 10)", () => {
  it("the 11th silent connection from one address is closed at once; other addresses and a real login still get in; closing one frees a slot", async () => {
    const flood: Probe[] = [];
    for (let i = 0; i < 10; i++) flood.push(await admitted(sIp, "127.0.0.2"));

    // The 11th: closed without a banner (no key exchange is ever started for it).
    const eleventh = probe(sIp, "127.0.0.2");
    expect(await within("the 11th to be closed", eleventh.banner)).toBeNull();
    // More of them are refused the same way, and the denials are logged at warn, rate-limited.
    for (let i = 0; i < 20; i++) expect(await within("a refused connection", probe(sIp, "127.0.0.2").banner)).toBeNull();
    const lines = deniedLines(sIp);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: expect.anything(), ip: "127.0.0.2", reason: "per_ip", limit: 10 });
    const events = await h.database.sql<{ level: string; metadata: { ip: string; reason: string } }[]>`
      select level, metadata from events where type = 'ssh.connection.denied'`;
    expect(events.some((e) => e.level === "warn" && e.metadata.ip === "127.0.0.2" && e.metadata.reason === "per_ip")).toBe(true);

    // Another address is not affected, and a real login from a third one works.
    const other = await admitted(sIp, "127.0.0.3");
    const login = await ssh(sIp, { bind: "127.0.0.4", command: ["echo", "caps-login-ok"] }).done;
    expect(login.stdout.trim(), login.stderr).toBe("caps-login-ok");
    expect(login.code).toBe(0);

    // One of the flood goes away: its address gets exactly one slot back.
    flood.shift()!.socket.destroy();
    const back = await waitUntil("a freed per-address slot", 15_000, async () => {
      const p = probe(sIp, "127.0.0.2");
      return (await within("banner or close", p.banner)) === BANNER ? p : undefined;
    });
    expect(await within("the next one refused again", probe(sIp, "127.0.0.2").banner)).toBeNull();

    for (const p of [...flood, back, other]) p.socket.destroy();
  });
});

describe("unauthenticated connections in total (SSH_MAX_UNAUTH_TOTAL)", () => {
  it("beyond the total every address is refused; authenticated connections do not count", async () => {
    const flood: Probe[] = [];
    for (let i = 0; i < 4; i++) flood.push(await admitted(sTotal, `127.0.1.${i + 1}`));
    expect(await within("refusal at the total", probe(sTotal, "127.0.1.9").banner)).toBeNull();
    expect(deniedLines(sTotal).some((l) => JSON.parse(l).reason === "total")).toBe(true);

    // One slot frees: anyone may take it (here another silent client, so it is full again).
    flood.shift()!.socket.destroy();
    flood.push(
      await waitUntil("a freed slot in the total", 15_000, async () => {
        const p = probe(sTotal, "127.0.1.11");
        return (await within("banner or close", p.banner)) === BANNER ? p : undefined;
      }),
    );
    // Full again (4 unauthenticated): a login now is refused at the door like everyone else…
    const refused = await ssh(sTotal, { bind: "127.0.1.20", command: ["true"] }).done;
    expect(refused.code).not.toBe(0);
    // …so free one, log in and hold the session open.
    flood.shift()!.socket.destroy();
    const held = ssh(sTotal, { bind: "127.0.1.20", command: ["echo held-open; exec cat"], hold: true });
    await waitUntil("the login to be in", 30_000, async () => (sTotal.deps.sessions.all().length === 1 ? true : undefined));
    // The authenticated connection holds no unauthenticated slot: one more silent client fits.
    flood.push(await admitted(sTotal, "127.0.1.12"));
    expect(await within("refusal at the total again", probe(sTotal, "127.0.1.13").banner)).toBeNull();

    held.kill();
    await held.done;
    for (const p of flood) p.socket.destroy();
  });
});

describe("login grace from the TCP accept (SSH_LOGIN_GRACE_SECONDS)", () => {
  it("a client that never sends a byte is closed after the grace period", async () => {
    const silent = probe(sGrace, "127.0.2.1");
    expect(await within("banner", silent.banner)).toBe(BANNER);
    // Closed by the proxy (grace 2 s here) — before this gate, ssh2 never even started a timer
    // for a client that had not sent its identification line.
    await within("the silent client to be closed", silent.closed, 15_000);
    const after = await admitted(sGrace, "127.0.2.1");
    after.socket.destroy();
  });
});

describe("pending env requests (SSH_MAX_PENDING_ENV_PER_SESSION, SSH_MAX_PENDING_ENV_BYTES)", () => {
  it("only the first 8 names reach the host; the rest are refused; the session works", async () => {
    const names = Array.from({ length: 200 }, (_, i) => `LC_CAPS_${String(i).padStart(3, "0")}=v${i}`);
    const r = await ssh(sEnv, {
      bind: "127.0.3.1",
      extra: ["-o", `SetEnv=${names.join(" ")}`],
      command: ["env | grep -c '^LC_CAPS_' ; echo session-works"],
    }).done;
    expect(r.code, r.stderr).toBe(0);
    const [count, marker] = r.stdout.trim().split("\n");
    expect(marker).toBe("session-works");
    expect(Number(count)).toBe(8);
    expect(sEnv.logs.some((l) => l.includes("ssh env request refused"))).toBe(true);
  });

  it("values count toward the byte budget: 1 KiB values stop at 4096 bytes", async () => {
    const big = "x".repeat(1000);
    const names = Array.from({ length: 6 }, (_, i) => `LC_BIG_${i}=${big}`);
    const r = await ssh(sEnv, {
      bind: "127.0.3.2",
      extra: ["-o", `SetEnv=${names.join(" ")}`],
      command: ["env | grep -c '^LC_BIG_' ; echo session-works"],
    }).done;
    expect(r.code, r.stderr).toBe(0);
    const [count, marker] = r.stdout.trim().split("\n");
    expect(marker).toBe("session-works");
    // Each is 8 + 1000 bytes: four fit in 4096, the fifth would not.
    expect(Number(count)).toBe(4);
  });
});
