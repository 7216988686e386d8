/**
 * The SSH entry proxy end to end (docs/architecture.md#ssh-proxy):
 * the real API, a real worker creating real host containers, the proxy in-process, and the real
 * OpenSSH `ssh`, `scp` and `sftp` binaries (always spawned with argv arrays; passwords reach the
 * client through SSH_ASKPASS from the environment, never argv).
 *
 * Two hosts: A (most cases) and C (the destructive ones: disable, stop). Client source addresses
 * vary over 127.0.0.0/8 (`BindAddress`) where a case needs its own per-IP lockout counter.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { secretAt } from "../../shared/crypto/secrets.js";
import { mintSshTicket } from "../../shared/services/access/tickets.js";
import { hosts } from "../../shared/db/schema/index.js";
import { redisKey } from "../../shared/redis.js";
import { type ApiHarness, createApiHarness, findSecrets, type TestUser } from "../../shared/test/api-harness.js";
import { type SshdHarness, startTestSshd } from "../../shared/test/sshd-harness.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";

let h: ApiHarness;
let w: WorkerHarness;
/**
 * The proxy at its defaults, except SSH_MAX_UNAUTH_PER_IP: the lockout burst opens 16 connections
 * at once from one address, over the default of 10 (that cap: test/docker/ssh-connection-caps.test.ts).
 */
let s: SshdHarness;
/** SSH_MAX_SESSIONS_PER_HOST=2 and SSH_LOCKOUT_MAX_PER_IP=3, to reach those limits cheaply. */
let sSmall: SshdHarness;
/** SSH_LOGIN_GRACE_SECONDS=2. */
let sGrace: SshdHarness;
let dir: string;
let admin: string;
/** Host passwords replaced during the run (still must never appear in a log or event). */
const retiredPasswords: string[] = [];

interface TestHost {
  id: string;
  shortId: string;
  password: string;
  user: TestUser;
}
let A: TestHost;
let C: TestHost;
/** Key files: kA registered for A's owner, kC for C's owner, kX registered nowhere. */
const key = (name: string) => join(dir, name);

// ---------------------------------------------------------------------------------------------
// Process helpers

interface Proc {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  ms: number;
}

interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Bytes for stdin, or an open file descriptor (as with `< file`). */
  stdin?: string | Buffer | number;
  /** An open file descriptor for stdout (as with `> file`). */
  stdout?: number;
  /** Leave stdin open (the caller writes and ends it). */
  openStdin?: boolean;
  timeoutMs?: number;
}

interface Held {
  child: ChildProcess;
  out(): string;
  err(): string;
  /** Resolves when stdout (or stderr) contains `text`; rejects after `ms`. */
  waitFor(text: string, ms?: number, stream?: "stdout" | "stderr"): Promise<void>;
  done: Promise<Proc>;
}

function start(cmd: string, argv: string[], o: RunOptions = {}): Held {
  const t0 = Date.now();
  const child = spawn(cmd, argv, {
    env: o.env ?? process.env,
    stdio: [typeof o.stdin === "number" ? o.stdin : "pipe", o.stdout ?? "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const waiters: (() => void)[] = [];
  const poke = () => waiters.splice(0).forEach((f) => f());
  child.stdout?.on("data", (d: Buffer) => {
    out.push(d);
    poke();
  });
  child.stderr!.on("data", (d: Buffer) => {
    err.push(d);
    poke();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 60_000);
  const done = new Promise<Proc>((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      poke();
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8"), ms: Date.now() - t0 });
    });
  });
  if (child.stdin) {
    child.stdin.on("error", () => {});
    if (typeof o.stdin === "string" || Buffer.isBuffer(o.stdin)) child.stdin.end(o.stdin);
    else if (o.stdin === undefined && !o.openStdin) child.stdin.end();
  }
  const outText = () => Buffer.concat(out).toString("utf8");
  const errText = () => Buffer.concat(err).toString("utf8");
  let exited = false;
  void done.then(() => (exited = true));
  return {
    child,
    out: outText,
    err: errText,
    done,
    waitFor(text, ms = 20_000, stream = "stdout") {
      const deadline = Date.now() + ms;
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if ((stream === "stdout" ? outText() : errText()).includes(text)) return resolve();
          if (exited || Date.now() > deadline) {
            return reject(new Error(`"${text}" not seen (exited: ${exited}); stdout=${outText()} stderr=${errText()}`));
          }
          waiters.push(check);
          setTimeout(check, 200);
        };
        check();
      });
    },
  };
}

const run = (cmd: string, argv: string[], o: RunOptions = {}) => start(cmd, argv, o).done;

interface Client {
  password?: string;
  identity?: string;
  /** Client source address (loopback), for cases that need their own per-IP counter. */
  bind?: string;
  prompts?: number;
  knownHosts?: string;
  /** Extra `-o`/flags placed first (OpenSSH keeps the first value given for an option). */
  extra?: string[];
  proxy?: SshdHarness;
}

/** OpenSSH options shared by ssh, scp and sftp (without the port flag, which differs). */
function clientOptions(o: Client): string[] {
  const p = o.proxy ?? s;
  return [
    "-F", "/dev/null",
    ...(o.extra ?? []),
    "-o", `BindAddress=${o.bind ?? "127.0.0.1"}`,
    "-o", `UserKnownHostsFile=${o.knownHosts ?? p.knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    "-o", `BatchMode=${o.password !== undefined ? "no" : "yes"}`,
    "-o", "ConnectTimeout=10",
    "-o", "LogLevel=ERROR",
    ...(o.identity
      ? ["-o", "IdentitiesOnly=yes", "-i", o.identity, "-o", "PreferredAuthentications=publickey", "-o", "PasswordAuthentication=no"]
      : [
          "-o", "PubkeyAuthentication=no",
          "-o", "PreferredAuthentications=password",
          "-o", `NumberOfPasswordPrompts=${o.prompts ?? 1}`,
        ]),
  ];
}

function clientEnv(o: Client, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SSH_ASKPASS: join(dir, "askpass"),
    SSH_ASKPASS_REQUIRE: "force",
    DISPLAY: ":0",
    CCP_TEST_SECRET: o.password ?? "",
    ...extra,
  };
  delete env.SSH_AUTH_SOCK; // never offer an agent's keys
  return env;
}

function sshArgv(login: string, o: Client, command: string[] = []): string[] {
  return ["-p", String((o.proxy ?? s).port), ...clientOptions(o), `${login}@127.0.0.1`, ...command];
}

const ssh = (login: string, o: Client, command: string[] = [], r: RunOptions = {}) =>
  run("ssh", sshArgv(login, o, command), { env: clientEnv(o), ...r });

const holdSsh = (login: string, o: Client, command: string[] = [], r: RunOptions = {}) =>
  start("ssh", sshArgv(login, o, command), { env: clientEnv(o), ...r });

// ---------------------------------------------------------------------------------------------
// Other helpers

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil<T>(what: string, fn: () => Promise<T | undefined | null | false>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type EventRow = { type: string; host_id: string | null; user_id: string | null; metadata: any; created_at: string };

async function events(type: string, hostId?: string): Promise<EventRow[]> {
  const q = new URLSearchParams({ type, limit: "200", ...(hostId ? { host_id: hostId } : {}) });
  const res = await h.request("GET", `/v1/admin/events?${q}`, { token: admin });
  expect(res.status).toBe(200);
  return res.body.events as EventRow[];
}

async function createHost(user: TestUser): Promise<TestHost> {
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: user.id } });
  expect(res.status).toBe(202);
  expect((await waitForTask(h, res.body.task_id)).status).toBe("succeeded");
  const rot = await h.request("POST", `/v1/admin/hosts/${res.body.host.id}/rotate-ssh-password`, { token: admin });
  expect(rot.status).toBe(200);
  return { id: res.body.host.id, shortId: res.body.host.short_id, password: rot.body.ssh_password, user };
}

async function addKey(user: TestUser, file: string): Promise<string> {
  const res = await h.request("POST", "/v1/user/ssh-keys", {
    token: user.token,
    body: { public_key: readFileSync(`${file}.pub`, "utf8").trim(), label: file.split("/").pop() },
  });
  expect(res.status).toBe(201);
  return res.body.key.id as string;
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Connect to a local port; resolve with what was received and how long until the connection ended. */
function probe(port: number, send?: string, timeoutMs = 10_000): Promise<{ data: string; ms: number; connected: boolean }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect({ port, host: "127.0.0.1" });
    const chunks: Buffer[] = [];
    let connected = false;
    const finish = () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks).toString("utf8"), ms: Date.now() - t0, connected });
    };
    const timer = setTimeout(() => sock.destroy(), timeoutMs);
    sock.on("connect", () => {
      connected = true;
      if (send !== undefined) sock.write(send);
    });
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("error", () => {});
    sock.on("close", finish);
  });
}

const hostContainer = (t: TestHost) => `ccp-host-${t.id}`;

/**
 * `docker exec` without blocking the event loop: the proxy runs in this process, so a synchronous
 * exec whose command talks through the proxy (e.g. into an `ssh -R` forward) would deadlock.
 */
async function dockerExec(t: TestHost, script: string, timeoutMs = 30_000): Promise<string> {
  const r = await run("docker", ["exec", "-u", "workspace", hostContainer(t), "sh", "-c", script], { timeoutMs });
  if (r.code !== 0) throw new Error(`docker exec failed (${r.code}): ${r.stderr}`);
  return r.stdout.toString("utf8");
}

/** Lockout counters live in Redis; cases that fail on purpose must not spill into the next ones. */
async function clearLockouts(): Promise<void> {
  const keys = await h.deps.redis.keys(redisKey(h.prefix, "sshfail", "*"));
  if (keys.length) await h.deps.redis.del(...keys);
}

const liveSessions = () => s.deps.sessions.all().length + sSmall.deps.sessions.all().length + sGrace.deps.sessions.all().length;

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h);
  [s, sSmall, sGrace] = await Promise.all([
    startTestSshd(h, { SSH_MAX_UNAUTH_PER_IP: "32" }),
    startTestSshd(h, { SSH_MAX_SESSIONS_PER_HOST: "2", SSH_LOCKOUT_MAX_PER_IP: "3" }),
    startTestSshd(h, { SSH_LOGIN_GRACE_SECONDS: "2" }),
  ]);
  admin = await h.adminToken();
  dir = mkdtempSync(join(tmpdir(), "ccp-ssh-proxy-"));
  // Our own askpass: prints the secret from the environment and, when asked to, counts prompts.
  writeFileSync(
    join(dir, "askpass"),
    '#!/bin/sh\n[ -n "$CCP_ASKPASS_LOG" ] && echo prompt >> "$CCP_ASKPASS_LOG"\nprintf "%s\\n" "$CCP_TEST_SECRET"\n',
  );
  chmodSync(join(dir, "askpass"), 0o700);
  for (const k of ["kA", "kC", "kX", "kD", "kProxyFake", "kHostFake"]) {
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", k, "-f", key(k)]);
  }
  const [ua, uc] = await Promise.all([h.createUser(), h.createUser()]);
  [A, C] = await Promise.all([createHost(ua), createHost(uc)]);
  await addKey(A.user, key("kA"));
  await addKey(C.user, key("kC"));
});

afterAll(async () => {
  try {
    // Bounded: a proxy that cannot stop (a connection it never closes) must not leak the containers.
    await Promise.race([Promise.all([s?.stop(), sSmall?.stop(), sGrace?.stop()]), sleep(15_000)]);
    await w?.stop();
  } finally {
    if (h) removeInstanceObjects(h.prefix);
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

afterEach(async () => {
  await clearLockouts();
});

describe("login (items 128–131)", () => {
  it("identifies itself as SSH-2.0-cloud-cli-proxy", async () => {
    const banner = await new Promise<string>((resolve, reject) => {
      const sock = net.connect({ port: s.port, host: "127.0.0.1" });
      let buf = "";
      sock.setTimeout(5000, () => reject(new Error("no banner")));
      sock.on("data", (d: Buffer) => {
        buf += d.toString("latin1");
        const nl = buf.indexOf("\r\n");
        if (nl >= 0) {
          sock.destroy();
          resolve(buf.slice(0, nl));
        }
      });
      sock.on("error", reject);
    });
    expect(banner).toBe("SSH-2.0-cloud-cli-proxy");
  });

  it("password login by short id gives a shell as workspace; event ssh.session.opened with method password", async () => {
    const t0 = new Date();
    const r = await ssh(A.shortId, { password: A.password }, ["id -un; pwd"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.toString().trim().split("\n")[0]).toBe("workspace");
    const opened = await waitUntil("ssh.session.opened", async () =>
      (await events("ssh.session.opened", A.id)).find((e) => new Date(e.created_at) >= new Date(t0.getTime() - 1000)),
    );
    expect(opened.metadata).toMatchObject({ login: A.shortId, method: "password", remote_ip: "127.0.0.1" });
    expect(opened.user_id).toBe(A.user.id);
    expect(opened.metadata.session_id).toMatch(/^[0-9a-f-]{36}$/);

    // A shell (no command: the `shell` request), fed from stdin.
    const shell = await ssh(A.shortId, { password: A.password, extra: ["-T"] }, [], { stdin: "id -un\necho \"$0\"\nexit 3\n" });
    expect(shell.code).toBe(3);
    // A login shell (the host's PAM may print a motd first).
    expect(shell.stdout.toString()).toMatch(/(^|\n)workspace\n-bash\n$/);
  });

  it("the username works as the login name of a user with one host", async () => {
    const r = await ssh(A.user.username, { password: A.password }, ["echo via-username"]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString().trim()).toBe("via-username");
    // Case does not matter: the name is lowercased.
    const r2 = await ssh(A.user.username.toUpperCase(), { password: A.password }, ["true"]);
    expect(r2.code).toBe(0);
  });

  it("a registered public key logs in; an unregistered one fails; another user's key cannot open this host", async () => {
    const ok = await ssh(A.shortId, { identity: key("kA") }, ["echo key-ok"]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout.toString().trim()).toBe("key-ok");
    const opened = await waitUntil("publickey session event", async () =>
      (await events("ssh.session.opened", A.id)).find((e) => e.metadata.method === "publickey"),
    );
    expect(opened.metadata.login).toBe(A.shortId);

    const unregistered = await ssh(A.shortId, { identity: key("kX") }, ["echo nope"]);
    expect(unregistered.code).toBe(255);
    expect(unregistered.stdout.toString()).toBe("");
    expect(unregistered.stderr).toContain("Permission denied");

    // kC is registered, but to C's owner: it opens C, never A.
    const foreign = await ssh(A.shortId, { identity: key("kC") }, ["echo nope"]);
    expect(foreign.code).toBe(255);
    expect(foreign.stderr).toContain("Permission denied");
    const own = await ssh(C.shortId, { identity: key("kC") }, ["echo c-ok"]);
    expect(own.code).toBe(0);
    expect(own.stdout.toString().trim()).toBe("c-ok");
  });

  it("the user's login password is not accepted", async () => {
    const r = await ssh(A.shortId, { password: A.user.password }, ["echo nope"]);
    expect(r.code).toBe(255);
    expect(r.stdout.toString()).toBe("");
    expect(r.stderr).toContain("Permission denied");
    // …not under the username either.
    const r2 = await ssh(A.user.username, { password: A.user.password }, ["echo nope"]);
    expect(r2.code).toBe(255);
  });
});

describe("sessions (items 136, 137, 142)", () => {
  it("exec exit status, stdout/stderr apart, pty", async () => {
    const exit7 = await ssh(A.shortId, { password: A.password }, ["exit 7"]);
    expect(exit7.code).toBe(7);

    const stderr = await ssh(A.shortId, { password: A.password }, ["echo out; echo err >&2"]);
    expect(stderr.stdout.toString()).toBe("out\n");
    expect(stderr.stderr).toBe("err\n");

    const tty = await ssh(A.shortId, { password: A.password, extra: ["-tt"] }, ["tty"]);
    expect(tty.code).toBe(0);
    expect(tty.stdout.toString()).toMatch(/^\/dev\/pts\/\d+\r?\n/);
    const noTty = await ssh(A.shortId, { password: A.password, extra: ["-T"] }, ["tty"]);
    expect(noTty.stdout.toString().trim()).toBe("not a tty");

  });

  it("env requests (SendEnv) reach the host's sshd exactly as over a direct connection", async () => {
    const command = ['echo "LANG=$LANG LC_TIME=$LC_TIME"'];
    const env = { LANG: "en_GB.UTF-8", LC_TIME: "en_GB.UTF-8" };
    const o: Client = { password: A.password, extra: ["-o", "SendEnv=LANG", "-o", "SendEnv=LC_TIME"] };
    const proxied = await run("ssh", sshArgv(A.shortId, o, command), { env: clientEnv(o, env) });
    expect(proxied.code).toBe(0);
    // LC_TIME (accepted by the host's AcceptEnv LC_*) arrives as sent.
    expect(proxied.stdout.toString()).toContain("LC_TIME=en_GB.UTF-8");

    // The same request straight to the host's sshd with the internal key (what the proxy uses).
    const [row] = await h.database.db.select().from(hosts).where(eq(hosts.id, A.id));
    const k = join(dir, "internal_key");
    writeFileSync(k, h.deps.secrets.decrypt(row!.internalKeyPrivateEnc!, secretAt.host(row!.id, "internal_key_private_enc")), { mode: 0o600 });
    const kh = join(dir, "host_known_hosts");
    writeFileSync(kh, `${row!.managementAddress} ${row!.hostKeyPublic}\n`);
    const direct = await run(
      "ssh",
      [
        "-F", "/dev/null", "-i", k, "-o", "IdentitiesOnly=yes", "-o", `UserKnownHostsFile=${kh}`, "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "SendEnv=LANG", "-o", "SendEnv=LC_TIME",
        `workspace@${row!.managementAddress}`, ...command,
      ],
      { env: { ...process.env, ...env } },
    );
    expect(direct.code).toBe(0);
    expect(proxied.stdout.toString()).toBe(direct.stdout.toString());
  });

  // Checklist item 136: LANG forwarded end to end (the host image no longer lets pam_env's
  // /etc/default/locale override a client-sent LANG).
  it("LANG sent by the client is the session's LANG", async () => {
    const o: Client = { password: A.password, extra: ["-o", "SendEnv=LANG"] };
    const r = await run("ssh", sshArgv(A.shortId, o, ['echo "LANG=$LANG"']), { env: clientEnv(o, { LANG: "en_GB.UTF-8" }) });
    expect(r.stdout.toString().trim(), r.stderr.toString()).toBe("LANG=en_GB.UTF-8");
  });

  it("a 64 MiB random file round-trips through ssh with matching sha256, both ways", async () => {
    const file = join(dir, "big.bin");
    const data = randomBytes(64 * 1024 * 1024);
    writeFileSync(file, data);
    const want = sha256(data);

    // ssh host 'cat > f; sha256sum f' < file
    let fd = openSync(file, "r");
    const up = await ssh(A.shortId, { password: A.password }, ["cat > /tmp/big.bin && sha256sum /tmp/big.bin"], { stdin: fd, timeoutMs: 120_000 });
    closeSync(fd);
    expect(up.code).toBe(0);
    expect(up.stdout.toString().split(/\s+/)[0]).toBe(want);

    // ssh host cat < file > out
    fd = openSync(file, "r");
    const outFile = join(dir, "echo.bin");
    let outFd = openSync(outFile, "w");
    const echo = await ssh(A.shortId, { password: A.password }, ["cat"], { stdin: fd, stdout: outFd, timeoutMs: 120_000 });
    closeSync(fd);
    closeSync(outFd);
    expect(echo.code).toBe(0);
    expect(sha256(readFileSync(outFile))).toBe(want);

    // ssh host 'cat f' > out
    const downFile = join(dir, "down.bin");
    outFd = openSync(downFile, "w");
    const down = await ssh(A.shortId, { password: A.password }, ["cat /tmp/big.bin"], { stdout: outFd, timeoutMs: 120_000 });
    closeSync(outFd);
    expect(down.code).toBe(0);
    expect(sha256(readFileSync(downFile))).toBe(want);
    rmSync(outFile);
    rmSync(downFile);
  }, 180_000);

  it("flow control: a client that stops reading stops the host's sender (bounded buffering in the proxy), and resumes to the last byte", async () => {
    // The host writes `total` bytes in 64 KiB pieces, recording its running total after each.
    const total = 128 * 1024 * 1024;
    await dockerExec(
      A,
      `cat > /tmp/flood.py <<'PY'
import os, sys
total, n, b = int(sys.argv[1]), 0, b"Z" * 65536
while n < total:
    n += os.write(1, b)
    with open("/tmp/ssh-flood.count", "w") as f:
        f.write(str(n))
PY
rm -f /tmp/ssh-flood.count`,
    );
    const sent = async () => Number((await dockerExec(A, "cat /tmp/ssh-flood.count 2>/dev/null || echo 0")).trim());
    const flood = holdSsh(A.shortId, { password: A.password }, [`python3 /tmp/flood.py ${total}`], { timeoutMs: 300_000 });
    await waitUntil("the first 4 MiB", async () => flood.out().length >= 4 * 1024 * 1024, 60_000);
    // Stop reading ssh's stdout: its pipe fills, ssh stops granting channel window, and the proxy
    // (window-limited on the client leg) must stop reading the host's channel in turn.
    flood.child.stdout!.pause();
    let last = -1;
    let stable = 0;
    const stalled = await waitUntil(
      "the host's sender to stall",
      async () => {
        const now = await sent();
        stable = now === last ? stable + 1 : 0;
        last = now;
        return stable >= 5 ? now : undefined;
      },
      120_000,
    );
    // Everything the host got out sits in kernel socket buffers, ssh's own buffers and the
    // proxy's bounded queues (per leg a 2 MiB channel window and a 2 MiB stream buffer): far from
    // all of it, and within a few windows of what this side has read.
    const received = flood.out().length + flood.child.stdout!.readableLength;
    expect(stalled).toBeLessThan(total);
    expect(stalled - received).toBeLessThan(48 * 1024 * 1024);
    flood.child.stdout!.resume();
    const r = await flood.done;
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(total);
    expect(r.stdout.every((b) => b === 0x5a)).toBe(true);
  }, 360_000);

  it("scp upload and download (sftp and legacy scp protocols) and sftp batch mode", async () => {
    const file = join(dir, "small.bin");
    const data = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(file, data);
    const o: Client = { password: A.password };
    const scp = (args: string[]) => run("scp", ["-q", "-P", String(s.port), ...clientOptions(o), ...args], { env: clientEnv(o) });

    const up = await scp([file, `${A.shortId}@127.0.0.1:/tmp/scp.bin`]);
    expect(up.stderr).toBe("");
    expect(up.code).toBe(0);
    const back = join(dir, "scp-back.bin");
    const down = await scp(["-O", `${A.shortId}@127.0.0.1:/tmp/scp.bin`, back]);
    expect(down.stderr).toBe("");
    expect(down.code).toBe(0);
    expect(sha256(readFileSync(back))).toBe(sha256(data));
    const legacyUp = await scp(["-O", file, `${A.shortId}@127.0.0.1:/tmp/scp-legacy.bin`]);
    expect(legacyUp.code).toBe(0);
    const sum = await ssh(A.shortId, o, ["sha256sum /tmp/scp-legacy.bin"]);
    expect(sum.stdout.toString().split(/\s+/)[0]).toBe(sha256(data));

    // sftp -b forces BatchMode (no password prompts), so it authenticates with the owner's key.
    const k: Client = { identity: key("kA") };
    const batch = join(dir, "batch");
    const got = join(dir, "sftp-back.bin");
    writeFileSync(batch, `put ${file} /tmp/sftp.bin\nls -l /tmp/sftp.bin\nget /tmp/sftp.bin ${got}\nrm /tmp/sftp.bin\n`);
    const sftp = await run("sftp", ["-b", batch, "-P", String(s.port), ...clientOptions(k), `${A.shortId}@127.0.0.1`], { env: clientEnv(k) });
    expect(sftp.code).toBe(0);
    expect(sftp.stdout.toString()).toContain("/tmp/sftp.bin");
    expect(sha256(readFileSync(got))).toBe(sha256(data));
  }, 90_000);

  it("ssh.session.closed reports bytes_in/bytes_out of a 10 MB transfer within 1 % and a duration", async () => {
    const t0 = Date.now();
    const n = 10_000_000;
    const r = await ssh(A.shortId, { password: A.password }, [`cat > /dev/null; head -c ${n} /dev/zero`], { stdin: randomBytes(n) });
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(n);
    const closed = await waitUntil("ssh.session.closed with ~10 MB", async () =>
      (await events("ssh.session.closed", A.id)).find(
        (e) => Date.parse(e.created_at) >= t0 - 1000 && Math.abs(e.metadata.bytes_in - n) <= n * 0.01,
      ),
    );
    expect(Math.abs(closed.metadata.bytes_in - n)).toBeLessThanOrEqual(n * 0.01);
    expect(Math.abs(closed.metadata.bytes_out - n)).toBeLessThanOrEqual(n * 0.01);
    expect(closed.metadata.duration_ms).toBeGreaterThan(0);
    expect(closed.metadata.duration_ms).toBeLessThanOrEqual(r.ms + 1000);
    expect(closed.metadata.reason).toBe("client_closed");
    expect(closed.metadata.session_id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("port forwarding (items 138, 139)", () => {
  it("ssh -L reaches a service on the host's 127.0.0.1; metadata, port 2375 and the management gateway are refused", async () => {
    const raw = await h.deps.redis.hget(redisKey(h.prefix, "engine-networks"), "default");
    const gateway = (JSON.parse(raw!) as { gateways: string[] }).gateways[0]!;
    expect(gateway).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    // On the host's loopback (netcat-openbsd): an "ok" server in a loop, and a one-shot server that
    // sends 8 MB and closes at once (the tail must not be lost when the host side closes first).
    const bulk = 8_000_000;
    docker(["exec", "-d", "-u", "workspace", hostContainer(A), "sh", "-c", "while true; do printf ok | nc -l -p 8000 -q 1; done"]);
    docker(["exec", "-d", "-u", "workspace", hostContainer(A), "sh", "-c", `head -c ${bulk} /dev/urandom | nc -l -p 8001 -q 0`]);

    const [pOk, pBulk, pMeta, pDocker, pGw] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const t0 = Date.now();
    const fwd = holdSsh(
      A.shortId,
      {
        password: A.password,
        extra: [
          "-N", "-o", "ExitOnForwardFailure=yes",
          "-L", `127.0.0.1:${pOk}:127.0.0.1:8000`,
          "-L", `127.0.0.1:${pBulk}:127.0.0.1:8001`,
          "-L", `127.0.0.1:${pMeta}:169.254.169.254:80`,
          "-L", `127.0.0.1:${pDocker}:10.99.0.1:2375`,
          "-L", `127.0.0.1:${pGw}:${gateway}:5432`,
        ],
      },
      [],
      { timeoutMs: 60_000 },
    );
    try {
      // The listeners exist once the client authenticated; a refused forward is closed at once.
      await waitUntil("local forward listener", async () => (await probe(pMeta, undefined, 2000)).connected);
      const ok = await waitUntil("forwarded service", async () => {
        const r = await probe(pOk);
        return r.data === "ok" ? r : null;
      });
      expect(ok.data).toBe("ok");
      const got = await new Promise<{ n: number; ms: number }>((resolve) => {
        const t1 = Date.now();
        let n = 0;
        const sock = net.connect({ port: pBulk, host: "127.0.0.1" });
        sock.on("data", (d: Buffer) => (n += d.length));
        sock.on("error", () => {});
        sock.on("close", () => resolve({ n, ms: Date.now() - t1 }));
        setTimeout(() => sock.destroy(), 20_000);
      });
      expect(got.n).toBe(bulk);
      expect(got.ms).toBeLessThan(10_000); // every byte, and then the close
      for (const p of [pMeta, pDocker, pGw]) {
        const r = await probe(p, "GET / HTTP/1.0\r\n\r\n");
        expect(r.connected).toBe(true);
        expect(r.data).toBe("");
        expect(r.ms).toBeLessThan(2000);
      }
      // The listener wait above probes pMeta until it connects, and each try is a denial of its
      // own: wait for the three destinations, not for any three events.
      const want = ["169.254.169.254:80", "10.99.0.1:2375", `${gateway}:5432`];
      const destsOf = (ev: Awaited<ReturnType<typeof events>>) => ev.map((e) => `${e.metadata.dest_host}:${e.metadata.dest_port}`).sort();
      const denied = await waitUntil("an ssh.forward.denied event for each refused destination", async () => {
        const ev = (await events("ssh.forward.denied", A.id)).filter((e) => Date.parse(e.created_at) >= t0 - 1000);
        return want.every((d) => destsOf(ev).includes(d)) ? ev : null;
      });
      const dests = destsOf(denied);
      expect(dests).toContain("169.254.169.254:80");
      expect(dests).toContain("10.99.0.1:2375");
      expect(dests).toContain(`${gateway}:5432`);
      expect(dests.some((d) => d.endsWith(":8000"))).toBe(false);
    } finally {
      fwd.child.kill("SIGTERM");
      await fwd.done;
      // Bracketed patterns do not match the pkill's own shell.
      await dockerExec(A, "pkill -f '[w]hile true; do printf ok'; pkill -f '[n]c -l -p 800'; true");
    }
  });

  it("ssh -L destinations are checked as addresses in every form; the host dials the checked address (issue 10 §4)", async () => {
    const raw = await h.deps.redis.hget(redisKey(h.prefix, "engine-networks"), "default");
    const gateway = (JSON.parse(raw!) as { gateways: string[] }).gateways[0]!;
    const gwDecimal = String(gateway.split(".").reduce((n, b) => n * 256 + Number(b), 0));
    docker(["exec", "-d", "-u", "workspace", hostContainer(A), "sh", "-c", "while true; do printf ok | nc -l -p 8002 -q 1; done"]);
    // Each spelling of 169.254.169.254 the host's getaddrinfo would accept, and the gateway in decimal.
    const deniedForms = ["2852039166", "0xa9fea9fe", "169.254.43518", "0251.0376.0251.0376", "[::ffff:a9fe:a9fe]", "[::ffff:169.254.169.254]"];
    const allowedForms = ["2130706433", "0x7f000001", "127.1", "[::ffff:127.0.0.1]", "localhost"];
    const denied = await Promise.all(deniedForms.map(async (form) => ({ form, port: await freePort() })));
    const allowed = await Promise.all(allowedForms.map(async (form) => ({ form, port: await freePort() })));
    const pGw = await freePort();
    const t0 = Date.now();
    const fwd = holdSsh(
      A.shortId,
      {
        password: A.password,
        extra: [
          "-N", "-o", "ExitOnForwardFailure=yes",
          ...denied.flatMap(({ form, port }) => ["-L", `127.0.0.1:${port}:${form}:80`]),
          ...allowed.flatMap(({ form, port }) => ["-L", `127.0.0.1:${port}:${form}:8002`]),
          "-L", `127.0.0.1:${pGw}:${gwDecimal}:5432`,
        ],
      },
      [],
      { timeoutMs: 60_000 },
    );
    try {
      await waitUntil("local forward listener", async () => (await probe(denied[0]!.port, undefined, 2000)).connected);
      for (const { port } of allowed) {
        const ok = await waitUntil(`forwarded service via ${port}`, async () => {
          const r = await probe(port);
          return r.data === "ok" ? r : null;
        });
        expect(ok.data).toBe("ok");
      }
      for (const { port } of [...denied, { port: pGw }]) {
        const r = await probe(port, "GET / HTTP/1.0\r\n\r\n");
        expect(r.data).toBe("");
      }
      // Wait for each destination's event, not for a count: the listener probe above can open
      // the first denied forward more than once (an event each), so a count could be reached
      // before the gateway's event was written (seen under load).
      const wantDests = [...deniedForms.map((f) => f.replace(/^\[|\]$/g, "")), gwDecimal];
      const ev = await waitUntil(`ssh.forward.denied events for ${wantDests.join(", ")}`, async () => {
        const got = (await events("ssh.forward.denied", A.id)).filter((e) => Date.parse(e.created_at) >= t0 - 1000);
        const dests = new Set(got.map((e) => String(e.metadata.dest_host)));
        return wantDests.every((d) => dests.has(d)) ? got : null;
      });
      const byDest = new Map(ev.map((e) => [String(e.metadata.dest_host), e.metadata]));
      for (const form of deniedForms) {
        const m = byDest.get(form.replace(/^\[|\]$/g, ""));
        expect(m, form).toBeDefined();
        expect(m!.address).toBe("169.254.169.254");
        expect(m!.reason).toBe("blocked_address");
      }
      expect(byDest.get(gwDecimal)?.address).toBe(gateway);
      for (const form of allowedForms) expect(byDest.has(form.replace(/^\[|\]$/g, ""))).toBe(false);
    } finally {
      fwd.child.kill("SIGTERM");
      await fwd.done;
      await dockerExec(A, "pkill -f '[w]hile true; do printf ok'; pkill -f '[n]c -l -p 8002'; true");
    }
  }, 120_000);

  it("ssh -R carries 5 simultaneous connections from inside the host", async () => {
    // The client-side service answers only once all 5 connections are open at the same time.
    const sockets: { sock: net.Socket; line: string }[] = [];
    let maxOpen = 0;
    let open = 0;
    // allowHalfOpen: `nc -N` sends EOF after its line and still waits for the answer.
    const server = net.createServer({ allowHalfOpen: true }, (sock) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      sock.on("close", () => open--);
      sock.on("error", () => {});
      let buf = "";
      sock.on("data", (d: Buffer) => {
        buf += d.toString();
        if (!buf.includes("\n")) return;
        sockets.push({ sock, line: buf.trim() });
        if (sockets.length === 5) for (const x of sockets) x.sock.end(`pong-${x.line}\n`);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const local = (server.address() as net.AddressInfo).port;
    const remote = 9000 + Math.floor(Math.random() * 1000);
    // -v only to see "remote forward success" (the forward is then listening on the host).
    const fwd = holdSsh(A.shortId, {
      password: A.password,
      extra: ["-v", "-N", "-o", "ExitOnForwardFailure=yes", "-R", `127.0.0.1:${remote}:127.0.0.1:${local}`],
    });
    try {
      await fwd.waitFor("remote forward success", 20_000, "stderr");
      const script =
        `for i in 1 2 3 4 5; do (echo "c$i" | nc -N -w 15 127.0.0.1 ${remote} > /tmp/rfwd.$i) & done; wait; ` +
        `cat /tmp/rfwd.1 /tmp/rfwd.2 /tmp/rfwd.3 /tmp/rfwd.4 /tmp/rfwd.5; rm -f /tmp/rfwd.*`;
      const out = (await dockerExec(A, script)).trim();
      expect(out.split("\n").sort()).toEqual(["pong-c1", "pong-c2", "pong-c3", "pong-c4", "pong-c5"]);
      expect(maxOpen).toBeGreaterThanOrEqual(5);
    } finally {
      fwd.child.kill("SIGTERM");
      await fwd.done;
      server.close();
    }
  });

  it("ssh -R bind addresses are checked as addresses: loopback in any spelling works, anything else is refused (issue 10 §4)", async () => {
    const server = net.createServer((sock) => {
      sock.on("error", () => {});
      sock.end("pong-r\n");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const local = (server.address() as net.AddressInfo).port;
    const remote = 10000 + Math.floor(Math.random() * 1000);
    const t0 = Date.now();
    // The loopback as a decimal number: the host listens on 127.0.0.1, and connections come back
    // to the client under its own text (its forward table matches on it).
    const ok = holdSsh(A.shortId, {
      password: A.password,
      extra: ["-v", "-N", "-o", "ExitOnForwardFailure=yes", "-R", `2130706433:${remote}:127.0.0.1:${local}`],
    });
    try {
      await ok.waitFor("remote forward success", 20_000, "stderr");
      const out = (await dockerExec(A, `echo hi | nc -N -w 10 127.0.0.1 ${remote}`)).trim();
      expect(out).toBe("pong-r");
    } finally {
      ok.child.kill("SIGTERM");
      await ok.done;
    }
    // A name (the host would resolve it with its tenant's DNS) and a non-loopback address.
    for (const bind of ["attacker.example.test", "203.0.113.10", "0xa9fea9fe"]) {
      const r = await ssh(A.shortId, { password: A.password }, ["-N", "-o", "ExitOnForwardFailure=yes", "-R", `${bind}:${remote + 1}:127.0.0.1:${local}`], { timeoutMs: 30_000 });
      expect(r.code, bind).not.toBe(0);
      expect(r.stderr.toString(), bind).toMatch(/remote port forwarding failed/i);
    }
    const ev = await waitUntil("3 bind_address denials", async () => {
      const got = (await events("ssh.forward.denied", A.id)).filter((e) => Date.parse(e.created_at) >= t0 - 1000 && e.metadata.reason === "bind_address");
      return got.length >= 3 ? got : null;
    });
    expect(new Map(ev.map((e) => [String(e.metadata.dest_host), e.metadata.address])) ).toEqual(
      new Map<string, unknown>([["attacker.example.test", null], ["203.0.113.10", "203.0.113.10"], ["0xa9fea9fe", "169.254.169.254"]]),
    );
    server.close();
  }, 120_000);
});

describe("failures and lockouts (items 132–134)", () => {
  it("three wrong passwords on one connection → the proxy disconnects", async () => {
    const log = join(dir, "prompts.log");
    writeFileSync(log, "");
    const o: Client = { password: "wrong-password-1", prompts: 5, bind: "127.0.0.11" };
    const r = await run("ssh", sshArgv(C.shortId, o, ["true"]), { env: clientEnv(o, { CCP_ASKPASS_LOG: log }) });
    expect(r.code).toBe(255);
    // The client would have asked 5 times; the server cut it off after the third failure.
    expect(readFileSync(log, "utf8").trim().split("\n")).toHaveLength(3);
    expect(r.stderr).toContain("too many authentication failures");
    expect(r.ms).toBeLessThan(15_000);
  });

  it("10 password failures for a login name from one address lock that pair only: keys, tickets and other addresses still get in (issue 10 §3)", async () => {
    const login = A.user.username;
    const bind = "127.0.0.21";
    const t0 = Date.now();
    // 3 + 3 + 3 + 1 failures over four connections.
    for (const prompts of [3, 3, 3, 1]) {
      const r = await ssh(login, { password: "wrong-password-2", prompts, bind });
      expect(r.code).toBe(255);
      expect(r.stderr).not.toContain("too many failed attempts");
    }
    const locked = await ssh(login, { password: A.password, bind }, ["echo should-not-run"]);
    expect(locked.code).toBe(255);
    expect(locked.stdout.toString()).toBe("");
    expect(locked.stderr).toContain("too many failed attempts");
    // Before issue 10 §3 the lock was on the login name alone: anyone knowing a public short id or
    // username could shut its owner out — by password, key and ticket — from everywhere. Now:
    // the owner's key from the attacker's very address still works…
    const byKey = await ssh(login, { identity: key("kA"), bind }, ["echo key-still-works"]);
    expect(byKey.code, byKey.stderr).toBe(0);
    expect(byKey.stdout.toString()).toContain("key-still-works");
    // …so does a one-time ticket…
    const { ticket } = await h.database.db.transaction((tx) =>
      mintSshTicket(tx, { hostId: A.id, userId: A.user.id, taskId: null, now: new Date(), ttlSeconds: 120 }),
    );
    const byTicket = await ssh(login, { password: ticket, bind }, ["echo ticket-still-works"]);
    expect(byTicket.code, byTicket.stderr).toBe(0);
    expect(byTicket.stdout.toString()).toContain("ticket-still-works");
    // …and the password from any other address.
    const elsewhere = await ssh(login, { password: A.password, bind: "127.0.0.22" }, ["echo elsewhere"]);
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
    // Another login name for the same host is not locked either.
    const other = await ssh(A.shortId, { password: A.password, bind }, ["echo other-login"]);
    expect(other.code).toBe(0);
    const failed = (await events("ssh.auth.failed")).filter((e) => e.metadata.login === login && Date.parse(e.created_at) >= t0 - 1000);
    expect(failed).toHaveLength(10);
    const lockEvents = (await events("ssh.auth.locked")).filter((e) => e.metadata.login === login);
    expect(lockEvents).toHaveLength(1);
    expect(lockEvents[0]!.metadata.key_type).toBe("user");
  });

  it("a burst of concurrent wrong passwords from one address cannot exceed the per-login limit", async () => {
    const login = `burst${randomBytes(3).toString("hex")}`;
    const t0 = Date.now();
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) => ssh(login, { password: `wrong-${i}`, bind: "127.0.1.1" }, ["true"])),
    );
    for (const r of results) expect(r.code).toBe(255);
    const failed = (await events("ssh.auth.failed")).filter((e) => e.metadata.login === login && Date.parse(e.created_at) >= t0 - 1000);
    expect(failed.length).toBeLessThanOrEqual(10);
    expect(results.filter((r) => r.stderr.includes("too many failed attempts")).length).toBeGreaterThanOrEqual(6);
  });

  it("per client IP: after SSH_LOCKOUT_MAX_PER_IP failures (3 here) that IP is refused, even with correct credentials", async () => {
    const bind = "127.0.0.31";
    for (let i = 0; i < 3; i++) {
      const r = await ssh(`nosuch${i}${randomBytes(2).toString("hex")}`, { password: "whatever-1", bind, proxy: sSmall });
      expect(r.code).toBe(255);
      expect(r.stderr).not.toContain("too many failed attempts");
    }
    const locked = await ssh(A.shortId, { password: A.password, bind, proxy: sSmall }, ["true"]);
    expect(locked.code).toBe(255);
    expect(locked.stderr).toContain("too many failed attempts");
    const fine = await ssh(A.shortId, { password: A.password, bind: "127.0.0.32", proxy: sSmall }, ["echo fine"]);
    expect(fine.code).toBe(0);
    const lockEvents = (await events("ssh.auth.locked")).filter((e) => e.metadata.ip === bind);
    expect(lockEvents).toHaveLength(1);
    expect(lockEvents[0]!.metadata.key_type).toBe("ip");
  });

  it("login grace (SSH_LOGIN_GRACE_SECONDS=2): a connection that never authenticates is closed", async () => {
    const r = await new Promise<{ banner: string; ms: number }>((resolve, reject) => {
      const t0 = Date.now();
      const sock = net.connect({ port: sGrace.port, host: "127.0.0.1" });
      let banner = "";
      sock.on("connect", () => sock.write("SSH-2.0-grace-probe\r\n"));
      sock.on("data", (d: Buffer) => {
        if (!banner.includes("\r\n")) banner += d.toString("latin1");
      });
      sock.on("error", () => {});
      sock.on("close", () => resolve({ banner: banner.split("\r\n")[0]!, ms: Date.now() - t0 }));
      setTimeout(() => {
        sock.destroy();
        reject(new Error("not closed within 10 s"));
      }, 10_000);
    });
    expect(r.banner).toBe("SSH-2.0-cloud-cli-proxy");
    expect(r.ms).toBeGreaterThanOrEqual(1500);
    expect(r.ms).toBeLessThan(6000);
  });

  it("a refused peer that never closes its side does not keep the proxy's socket", async () => {
    // allowHalfOpen: this client ignores the proxy's FIN, like a misbehaving or hostile one.
    const sock = net.connect({ port: sGrace.port, host: "127.0.0.1", allowHalfOpen: true });
    sock.on("error", () => {});
    sock.on("data", () => {});
    await new Promise<void>((resolve) => sock.on("connect", () => resolve()));
    sock.write("SSH-2.0-half-open-probe\r\n");
    const local = sock.localPort!;
    await new Promise<void>((resolve) => sock.once("end", () => resolve())); // the grace FIN
    // The proxy's side of this connection must soon belong to no process (fd closed).
    const proxySide = async () => {
      const r = await run("ss", ["-Htanp"]);
      // Columns: state, recv-q, send-q, local address:port, peer address:port, process.
      return r.stdout
        .toString()
        .split("\n")
        .find((l) => {
          const c = l.trim().split(/\s+/);
          return c[3] === `127.0.0.1:${sGrace.port}` && c[4] === `127.0.0.1:${local}`;
        });
    };
    expect(await proxySide()).toMatch(/^FIN-WAIT/); // the proxy half-closed: FIN sent
    await waitUntil("proxy socket released", async () => !(await proxySide())?.includes("users:"), 8000);
    sock.destroy();
  });
});

describe("limits and refusals (items 141, 144)", () => {
  it("too many sessions (SSH_MAX_SESSIONS_PER_HOST=2 here; default 10): the next connection is refused", async () => {
    await waitUntil("no live sessions", async () => liveSessions() === 0);
    const o: Client = { password: A.password, proxy: sSmall };
    const held = [holdSsh(A.shortId, o, ["echo ready; sleep 30"]), holdSsh(A.shortId, o, ["echo ready; sleep 30"])];
    try {
      await Promise.all(held.map((x) => x.waitFor("ready")));
      const third = await ssh(A.shortId, o, ["echo should-not-run"]);
      expect(third.code).toBe(255);
      expect(third.stdout.toString()).toBe("");
      expect(third.stderr).toContain(`too many sessions for host ${A.shortId}`);
      const refused = (await events("ssh.refused", A.id)).find((e) => e.metadata.reason === "too_many_sessions");
      expect(refused).toBeDefined();
    } finally {
      for (const x of held) x.child.kill("SIGTERM");
      await Promise.all(held.map((x) => x.done));
    }
    // The slots are released when the sessions end.
    await waitUntil("slots released", async () => liveSessions() === 0);
    const again = await ssh(A.shortId, o, ["echo again"]);
    expect(again.code).toBe(0);
  });

  it("the pinned client refuses a proxy presenting a different key", async () => {
    const kh = join(dir, "wrong_known_hosts");
    writeFileSync(kh, `[127.0.0.1]:${s.port} ${readFileSync(`${key("kProxyFake")}.pub`, "utf8").trim()}\n`);
    const r = await ssh(A.shortId, { password: A.password, knownHosts: kh }, ["echo should-not-run"]);
    expect(r.code).toBe(255);
    expect(r.stdout.toString()).toBe("");
    expect(r.stderr).toContain("Host key verification failed");
  });

  it("a host whose sshd presents another host key is refused as unreachable", async () => {
    const [row] = await h.database.db.select().from(hosts).where(eq(hosts.id, A.id));
    const original = row!.hostKeyPublic!;
    await h.database.db
      .update(hosts)
      .set({ hostKeyPublic: readFileSync(`${key("kHostFake")}.pub`, "utf8").trim() })
      .where(eq(hosts.id, A.id));
    try {
      const r = await ssh(A.shortId, { password: A.password }, ["echo should-not-run"]);
      expect(r.code).toBe(255);
      expect(r.stdout.toString()).toBe("");
      expect(r.stderr).toContain(`host ${A.shortId} is unreachable; try again shortly`);
      expect(r.ms).toBeLessThan(15_000);
      const refused = (await events("ssh.refused", A.id)).find((e) => e.metadata.reason === "host_unreachable");
      expect(refused).toBeDefined();
    } finally {
      await h.database.db.update(hosts).set({ hostKeyPublic: original }).where(eq(hosts.id, A.id));
    }
    const back = await ssh(A.shortId, { password: A.password }, ["echo back"]);
    expect(back.code).toBe(0);
  });
});

describe("credential changes keep open sessions (items 56, 95)", () => {
  it("rotate-ssh-password: the old password fails at once, the new one works, an open session continues", async () => {
    const held = holdSsh(A.shortId, { password: A.password }, ["echo ready; cat; echo still-here"], { openStdin: true });
    await held.waitFor("ready");
    const rot = await h.request("POST", `/v1/admin/hosts/${A.id}/rotate-ssh-password`, { token: admin });
    expect(rot.status).toBe(200);
    expect(rot.body.ssh_password).toMatch(/^[A-Za-z0-9]{20}$/);
    const old = A.password;
    A.password = rot.body.ssh_password;
    retiredPasswords.push(old);
    const r1 = await ssh(A.shortId, { password: old }, ["echo nope"]);
    expect(r1.code).toBe(255);
    expect(r1.stderr).toContain("Permission denied");
    const r2 = await ssh(A.shortId, { password: A.password }, ["echo new-works"]);
    expect(r2.code).toBe(0);
    expect(r2.stdout.toString().trim()).toBe("new-works");
    held.child.stdin!.end("through-old-session\n");
    const done = await held.done;
    expect(done.code).toBe(0);
    expect(done.stdout.toString()).toBe("ready\nthrough-old-session\nstill-here\n");
  });

  it("a deleted key cannot open a new session; a session opened with it stays up", async () => {
    const keyId = await addKey(A.user, key("kD"));
    const held = holdSsh(A.shortId, { identity: key("kD") }, ["echo ready; cat; echo still-here"], { openStdin: true });
    await held.waitFor("ready");
    const del = await h.request("DELETE", `/v1/user/ssh-keys/${keyId}`, { token: A.user.token });
    expect(del.status).toBe(204);
    const r = await ssh(A.shortId, { identity: key("kD") }, ["echo nope"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("Permission denied");
    held.child.stdin!.end("through-old-session\n");
    const done = await held.done;
    expect(done.code).toBe(0);
    expect(done.stdout.toString()).toBe("ready\nthrough-old-session\nstill-here\n");
  });
});

describe("revocation (items 135, 143)", () => {
  it("disabling the owner closes the open session within seconds; then correct credentials → account disabled", async () => {
    const held = holdSsh(C.shortId, { password: C.password }, ["echo ready; sleep 60"]);
    await held.waitFor("ready");
    const t0 = Date.now();
    const res = await h.request("PATCH", `/v1/admin/users/${C.user.id}`, { token: admin, body: { status: "disabled" } });
    expect(res.status).toBe(200);
    const done = await held.done;
    const ms = Date.now() - t0;
    expect(ms).toBeLessThan(5000);
    expect(done.code).toBe(255);
    const closed = await waitUntil("ssh.session.closed (user_disabled)", async () =>
      (await events("ssh.session.closed", C.id)).find((e) => e.metadata.reason === "user_disabled"),
    );
    expect(closed.metadata.duration_ms).toBeGreaterThan(0);

    for (const o of [{ password: C.password }, { identity: key("kC") }] as Client[]) {
      const r = await ssh(C.shortId, o, ["echo should-not-run"]);
      expect(r.code).toBe(255);
      expect(r.stdout.toString()).toBe("");
      expect(r.stderr).toContain("account disabled");
    }
    const refused = (await events("ssh.refused", C.id)).filter((e) => e.metadata.reason === "account_disabled");
    expect(refused.length).toBeGreaterThanOrEqual(2);
  });

  it("a stopped host → 'is not running'; stopping a host closes its open session", async () => {
    // Disabling stopped C; re-enable the owner (the host stays stopped).
    const en = await h.request("PATCH", `/v1/admin/users/${C.user.id}`, { token: admin, body: { status: "active" } });
    expect(en.status).toBe(200);
    await waitUntil("host C stopped", async () => {
      const r = await h.request("GET", `/v1/admin/hosts/${C.id}`, { token: admin });
      return r.body.host.status === "stopped";
    }, 60_000);
    const r = await ssh(C.shortId, { password: C.password }, ["echo should-not-run"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain(`host ${C.shortId} is not running (status: stopped)`);

    const st = await h.request("POST", `/v1/admin/hosts/${C.id}/start`, { token: admin });
    expect(st.status).toBe(202);
    expect((await waitForTask(h, st.body.task_id)).status).toBe("succeeded");
    const held = holdSsh(C.shortId, { password: C.password }, ["echo ready; sleep 60"]);
    await held.waitFor("ready");
    const t0 = Date.now();
    const stop = await h.request("POST", `/v1/admin/hosts/${C.id}/stop`, { token: admin });
    expect(stop.status).toBe(202);
    const done = await held.done;
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(done.code).toBe(255);
    await waitUntil("ssh.session.closed (host_stopped)", async () =>
      (await events("ssh.session.closed", C.id)).find((e) => e.metadata.reason === "host_stopped"),
    );
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
  }, 90_000);
});

describe("secrets", () => {
  it("no password, private key or ticket reached a proxy log line or an event", async () => {
    const all: string[] = [];
    for (let offset = 0; ; offset += 200) {
      const res = await h.request("GET", `/v1/admin/events?limit=200&offset=${offset}`, { token: admin });
      all.push(...res.body.events.map((e: unknown) => JSON.stringify(e)));
      if (offset + 200 >= res.body.total) break;
    }
    expect(all.some((e) => e.includes("ssh.session.closed"))).toBe(true);
    const haystack = [...all, ...s.logs, ...sSmall.logs, ...sGrace.logs, ...w.logs, ...h.logs];
    const privateKeyBodies = ["kA", "kC", "kX", "kD"].map((k) => readFileSync(key(k), "utf8").split("\n")[2]!);
    const secrets = [A.password, C.password, ...retiredPasswords, A.user.password, C.user.password, ...privateKeyBodies];
    expect(findSecrets(haystack, secrets)).toEqual([]);
  });
});
