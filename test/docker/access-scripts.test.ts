import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { secretAt } from "../../shared/crypto/secrets.js";
import { type ApiHarness, createApiHarness, type TestUser } from "../../shared/test/api-harness.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";

/**
 * The REAL bootstrap and entry scripts (docs/api.md#bootstrap, docs/api.md#entry), fetched with curl from a real
 * listening API and run by bash under a pseudo-terminal, against a real worker on the engine:
 * every exit code of docs/api.md#bootstrap (checklist 118), no secret on any argv (119), a stopped host started by
 * the flow (120). `ssh` is a fake first on PATH that records how it was exec'd and runs the askpass
 * helper; the SSH proxy itself is tested end to end elsewhere.
 */
let h: ApiHarness;
let w: WorkerHarness | undefined;
let server: ServerType;
let baseUrl: string;
let admin: string;
/** The app the listening server hands requests to (swapped for the EGRESS_REQUIRED case). */
let current: ApiHarness["app"];
let work: string;
let fakeBin: string;
const tmpDirsToCheck: string[] = [];
/** util-linux `script`, by absolute path: some cases run with a PATH that lacks it. */
const SCRIPT_BIN = execFileSync("bash", ["-c", "command -v script"], { encoding: "utf8" }).trim();

const FAKE_SSH = `#!/usr/bin/env bash
# Fake OpenSSH client for the script tests: records its argv and environment, runs the askpass
# helper like ssh would, and snapshots every process's argv at the moment it was exec'd.
if [[ \${1-} == -V ]]; then echo "\${FAKE_SSH_VERSION:-OpenSSH_9.6p1 Fake-1, OpenSSL 3.0.13 30 Jan 2024}" >&2; exit 0; fi
out=\${FAKE_SSH_OUT:?}
printf '%s\\n' "$@" >"$out/argv"
printf '%s' "\${SSH_ASKPASS-}" >"$out/askpass-path"
printf '%s' "\${SSH_ASKPASS_REQUIRE-}" >"$out/askpass-require"
if [[ -v CCP_PASSWORD ]]; then echo set >"$out/ccp-password-env"; else echo unset >"$out/ccp-password-env"; fi
if [[ -t 0 ]]; then echo tty >"$out/stdin"; else echo other >"$out/stdin"; fi
for a in "$@"; do
  case $a in
    UserKnownHostsFile=*)
      f=\${a#UserKnownHostsFile=}
      cp "$f" "$out/known_hosts"
      stat -c %a "$(dirname "$f")" >"$out/dir-mode"
      dirname "$f" >"$out/dir"
      ;;
  esac
done
stat -c %a "$SSH_ASKPASS" >"$out/askpass-mode"
"$SSH_ASKPASS" "password: " >"$out/askpass-output"
for f in /proc/[0-9]*/cmdline; do { tr '\\0' ' ' <"$f"; echo; } 2>/dev/null; done >"$out/cmdlines"
echo "fake ssh: connected"
exit 0
`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "ccp-scripts-"));
  fakeBin = join(work, "bin");
  mkdirSync(fakeBin);
  writeFileSync(join(fakeBin, "ssh"), FAKE_SSH);
  chmodSync(join(fakeBin, "ssh"), 0o755);

  // Listen first: PUBLIC_BASE_URL (the only URL the scripts use) must be this server's address.
  await new Promise<void>((resolve) => {
    server = serve(
      { fetch: (req, env) => current.fetch(req, env), port: 0, hostname: "127.0.0.1" },
      (info: AddressInfo) => {
        baseUrl = `http://127.0.0.1:${info.port}`;
        resolve();
      },
    );
  });
  h = await createApiHarness({
    PUBLIC_BASE_URL: baseUrl,
    SSH_PUBLIC_HOST: "ssh.example.test",
    SSH_PUBLIC_PORT: "2222",
    // Every script connects from 127.0.0.1: keep the per-IP counter out of the way of the cases.
    AUTH_FAIL_MAX_PER_IP: "1000",
  });
  current = h.app;
  w = await startTestWorker(h);
  admin = await h.adminToken();
});

afterAll(async () => {
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await h?.close();
  rmSync(work, { recursive: true, force: true });
});

interface RunResult {
  code: number | null;
  out: string;
  /** What the fake ssh recorded (empty when ssh was never exec'd). */
  ssh: Record<string, string>;
  /** Every process argv seen while the script ran. */
  argvs: string[];
  tmp: string;
}

/** Sample every process's argv (like `ps`) every 20 ms until stopped. */
function sampleArgvs(): () => string[] {
  const seen = new Set<string>();
  const take = () => {
    for (const p of readdirSync("/proc")) {
      if (!/^\d+$/.test(p)) continue;
      try {
        seen.add(readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " "));
      } catch {
        // the process ended meanwhile
      }
    }
  };
  const timer = setInterval(take, 20);
  return () => {
    clearInterval(timer);
    take();
    return [...seen];
  };
}

/**
 * Run a shell command line under a pseudo-terminal (`script`), as a user would in a terminal.
 * `answers` are typed into the terminal when their prompt appears.
 */
async function runInTerminal(
  cmd: string,
  env: Record<string, string> = {},
  opts: { answers?: [string, string][]; timeoutMs?: number; noTerminal?: boolean } = {},
): Promise<RunResult> {
  const sshOut = mkdtempSync(join(work, "ssh-"));
  const tmp = mkdtempSync(join(work, "tmp-"));
  const fullEnv = {
    PATH: `${fakeBin}:${process.env.PATH}`,
    HOME: work,
    SHELL: "/bin/bash",
    LANG: "C.UTF-8",
    TERM: "dumb",
    TMPDIR: tmp,
    FAKE_SSH_OUT: sshOut,
    ...env,
  };
  const stop = sampleArgvs();
  const child = opts.noTerminal
    ? spawn("bash", ["-c", cmd], { env: fullEnv, stdio: ["pipe", "pipe", "pipe"], detached: true })
    : spawn(SCRIPT_BIN, ["-qec", cmd, "/dev/null"], { env: fullEnv, stdio: ["pipe", "pipe", "pipe"], detached: true });
  let out = "";
  const pending = [...(opts.answers ?? [])];
  let typing = false;
  const onData = (d: Buffer) => {
    out += d.toString("utf8");
    if (typing || !pending.length || !out.includes(pending[0]![0])) return;
    // Type like a person, a moment after the prompt: bash turns echo off only once `read -s`
    // runs, just after printing the prompt, so (as with any prompt) type-ahead would be echoed.
    typing = true;
    setTimeout(() => {
      child.stdin.write(`${pending.shift()![1]}\n`);
      typing = false;
      onData(Buffer.alloc(0));
    }, 300);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      out += "\n[test: timed out, killed]";
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }, opts.timeoutMs ?? 60_000);
    child.on("error", (err) => {
      out += `\n[test: could not run: ${err.message}]`;
      clearTimeout(timer);
      resolve(null);
    });
    child.on("close", (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  const argvs = stop();
  const ssh: Record<string, string> = {};
  for (const f of readdirSync(sshOut)) ssh[f] = readFileSync(join(sshOut, f), "utf8");
  return { code, out: out.replace(/\r\n/g, "\n"), ssh, argvs, tmp };
}

const bootstrapCmd = () => `curl -sSf '${baseUrl}/v1/bootstrap/script' | bash`;
const entryCmd = (shortId: string) => `curl -sSf '${baseUrl}/entry/${shortId}' | bash`;

/** A user with a host row in a given status (the worker starts it for real when asked to). */
async function userWithHostRow(status: string): Promise<TestUser & { hostId: string; shortId: string }> {
  const u = await h.createUser();
  const shortId = randomBytes(6).toString("hex").slice(0, 6);
  const id = randomUUID();
  const enc = h.deps.secrets.encrypt(randomBytes(10).toString("hex"), secretAt.host(id, "ssh_password_enc"));
  const [row] = await h.database.sql<{ id: string }[]>`
    insert into hosts (id, user_id, short_id, status, desired_state, ssh_password_enc)
    values (${id}, ${u.id}, ${shortId}, ${status}, 'stopped', ${enc})
    returning id`;
  return { ...u, hostId: row!.id, shortId };
}

const taskIdOf = (out: string) => /Task ([0-9a-f-]{36})/.exec(out)?.[1];
const asText = (r: RunResult) => `exit ${r.code}\n${r.out}`;

describe("prerequisites", () => {
  it("exits 1 when OpenSSH is older than 8.4", async () => {
    const u = await h.createUser();
    const r = await runInTerminal(bootstrapCmd(), { FAKE_SSH_VERSION: "OpenSSH_8.2p1 Ubuntu-4, OpenSSL 1.1.1f", CCP_USERNAME: u.username, CCP_PASSWORD: u.password });
    expect(r.code, asText(r)).toBe(1);
    expect(r.out).toContain("OpenSSH 8.4 or newer is required");
    expect(r.ssh.argv).toBeUndefined();
  });

  it("exits 1 when curl is missing", async () => {
    const file = join(work, "bootstrap-nocurl.sh");
    writeFileSync(file, (await h.request("GET", "/v1/bootstrap/script")).text);
    const r = await runInTerminal(`/bin/bash ${file}`, { PATH: fakeBin });
    expect(r.code, asText(r)).toBe(1);
    expect(r.out).toContain("curl is required");
  });

  it("exits 1 without a terminal to prompt on", async () => {
    const r = await runInTerminal(bootstrapCmd(), {}, { noTerminal: true });
    expect(r.code, asText(r)).toBe(1);
    expect(r.out).toContain("no terminal");
  });
});

describe("bootstrap script exit codes (item 118)", () => {
  it("2 when the API is unreachable", async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const other = await h.withConfig({ PUBLIC_BASE_URL: `http://127.0.0.1:${closed}` });
    const file = join(work, "bootstrap-closed.sh");
    writeFileSync(file, (await other.request("GET", "/v1/bootstrap/script")).text);
    const r = await runInTerminal(`bash ${file}`, { CCP_USERNAME: "someone", CCP_PASSWORD: "whatever" });
    expect(r.code, asText(r)).toBe(2);
    expect(r.out).toContain("could not reach");
  });

  it("2 when an error answer carries no error_code", async () => {
    const bad = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: () => new Response("<html>bad gateway</html>", { status: 502 }), port: 0, hostname: "127.0.0.1" }, () =>
        resolve(s),
      );
    });
    try {
      const port = (bad.address() as AddressInfo).port;
      const other = await h.withConfig({ PUBLIC_BASE_URL: `http://127.0.0.1:${port}` });
      const file = join(work, "bootstrap-502.sh");
      writeFileSync(file, (await other.request("GET", "/v1/bootstrap/script")).text);
      const r = await runInTerminal(`bash ${file}`, { CCP_USERNAME: "someone", CCP_PASSWORD: "whatever" });
      expect(r.code, asText(r)).toBe(2);
      expect(r.out).toContain("HTTP 502");
    } finally {
      await new Promise<void>((resolve) => bad.close(() => resolve()));
    }
  });

  it("10 for a wrong password, and the password is never echoed or on an argv", async () => {
    const u = await userWithHostRow("stopped");
    const r = await runInTerminal(bootstrapCmd(), { CCP_USERNAME: u.username, CCP_PASSWORD: "wrong-password-xyz" });
    expect(r.code, asText(r)).toBe(10);
    expect(r.out).toContain("invalid username or password");
    expect(r.argvs.filter((a) => a.includes("wrong-password-xyz"))).toEqual([]);
    expect(r.out).not.toContain("wrong-password-xyz");
  });

  it("11 for a disabled account", async () => {
    const u = await userWithHostRow("stopped");
    expect((await h.request("PATCH", `/v1/admin/users/${u.id}`, { token: admin, body: { status: "disabled" } })).status).toBe(200);
    const r = await runInTerminal(bootstrapCmd(), { CCP_USERNAME: u.username, CCP_PASSWORD: u.password });
    expect(r.code, asText(r)).toBe(11);
    expect(r.out).toContain("account is disabled");
  });

  it("12 for an expired account", async () => {
    const u = await userWithHostRow("stopped");
    await h.database.sql`update users set expires_at = now() - interval '1 minute' where id = ${u.id}`;
    const r = await runInTerminal(bootstrapCmd(), { CCP_USERNAME: u.username, CCP_PASSWORD: u.password });
    expect(r.code, asText(r)).toBe(12);
  });

  it("13 when the user has no host", async () => {
    const u = await h.createUser();
    const r = await runInTerminal(bootstrapCmd(), { CCP_USERNAME: u.username, CCP_PASSWORD: u.password });
    expect(r.code, asText(r)).toBe(13);
  });

  it("1 when rate limited", async () => {
    const u = await userWithHostRow("stopped");
    // Failures count per (username, address) (issue 10 §3): from the address the script uses.
    for (let i = 0; i < 10; i++) expect((await h.login(u.username, `wrong-${i}`, "127.0.0.1")).status).toBe(401);
    const r = await runInTerminal(bootstrapCmd(), { CCP_USERNAME: u.username, CCP_PASSWORD: u.password });
    // Give 127.0.0.1 its failures back: the other tests here sign in from it too.
    await h.deps.limiter.reset({ type: "ip", value: "127.0.0.1" });
    expect(r.code, asText(r)).toBe(1);
    expect(r.out).toContain("(rate_limited)");
  });
});

describe("bootstrap and entry scripts reach ssh (items 118–120)", () => {
  let user: TestUser & { hostId: string; shortId: string };

  beforeAll(async () => {
    const u = await h.createUser();
    const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
    expect(res.status, res.text).toBe(202);
    const t = await waitForTask(h, res.body.task_id, 150_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    user = { ...u, hostId: res.body.host.id, shortId: res.body.host.short_id };
  }, 180_000);

  it("bootstrap: exec's ssh with the pinned key, the one-time ticket only through askpass, no secret on any argv", async () => {
    const r = await runInTerminal(bootstrapCmd(), { CCP_USERNAME: user.username, CCP_PASSWORD: user.password }, { timeoutMs: 120_000 });
    expect(r.code, asText(r)).toBe(0);
    expect(r.out).toContain("fake ssh: connected");
    const taskId = taskIdOf(r.out);
    expect(taskId, r.out).toBeDefined();
    expect(r.out).toMatch(/\[100%\] SSH ready/);

    const dir = r.ssh.dir!.trim();
    expect(dir.startsWith(r.tmp)).toBe(true);
    tmpDirsToCheck.push(dir);
    expect(r.ssh.argv!.trimEnd().split("\n")).toEqual([
      "-o", `UserKnownHostsFile=${dir}/known_hosts`,
      "-o", "StrictHostKeyChecking=yes",
      "-o", "PubkeyAuthentication=no",
      "-o", "PreferredAuthentications=password,keyboard-interactive",
      "-o", "NumberOfPasswordPrompts=1",
      "-p", "2222",
      `${user.shortId}@ssh.example.test`,
    ]);
    expect(r.ssh["askpass-require"]).toBe("force");
    expect(r.ssh["askpass-path"]).toBe(`${dir}/askpass`);
    expect(r.ssh["dir-mode"]!.trim()).toBe("700");
    expect(r.ssh["askpass-mode"]!.trim()).toBe("700");
    expect(r.ssh.stdin!.trim(), "ssh's stdin is the terminal").toBe("tty");
    expect(r.ssh["ccp-password-env"]!.trim(), "the login password is not inherited by ssh").toBe("unset");

    const ticket = r.ssh["askpass-output"]!.replace(/\n$/, "");
    expect(ticket).toMatch(/^ccpt_[A-Za-z0-9]{32}$/);
    const [key] = await h.database.sql<{ public_key: string }[]>`select public_key from system_keys where name = 'ssh_proxy_host_key'`;
    const [alg, blob] = key!.public_key.split(" ");
    expect(r.ssh.known_hosts).toBe(`[ssh.example.test]:2222 ${alg} ${blob}\n`);
    const rows = await h.database.sql<{ task_id: string; host_id: string }[]>`
      select task_id, host_id from ssh_tickets where ticket_hash = ${createHash("sha256").update(ticket).digest("hex")}`;
    expect(rows).toEqual([{ task_id: taskId, host_id: user.hostId }]);

    // Item 119: no argv — at ssh's exec or at any moment of the run — holds the password or ticket.
    const snapshot = r.ssh.cmdlines!.split("\n");
    expect(snapshot.some((l) => l.includes("ssh.example.test")), "the snapshot did see ssh itself").toBe(true);
    for (const secret of [user.password, ticket]) {
      expect(snapshot.filter((l) => l.includes(secret))).toEqual([]);
      expect(r.argvs.filter((l) => l.includes(secret))).toEqual([]);
    }
    expect(r.argvs.some((l) => l.includes("curl")), "the sampler did see the run").toBe(true);
    expect(r.out).not.toContain(user.password);
    expect(r.out).not.toContain(ticket);
  }, 150_000);

  it("bootstrap: prompts on the terminal without echoing the password", async () => {
    const r = await runInTerminal(bootstrapCmd(), {}, {
      answers: [
        ["Username: ", user.username],
        ["Password: ", user.password],
      ],
      timeoutMs: 120_000,
    });
    expect(r.code, asText(r)).toBe(0);
    expect(r.out).toContain(user.username);
    expect(r.out).not.toContain(user.password);
    expect(r.ssh["askpass-output"]).toMatch(/^ccpt_[A-Za-z0-9]{32}\n$/);
  }, 150_000);

  it("entry: a running host connects with a one-time ticket through askpass, never the host SSH password (issue 10 §5)", async () => {
    const rot = await h.request("POST", `/v1/admin/hosts/${user.hostId}/rotate-ssh-password`, { token: admin });
    expect(rot.status, rot.text).toBe(200);
    const sshPassword: string = rot.body.ssh_password;
    const r = await runInTerminal(entryCmd(user.shortId), { CCP_PASSWORD: user.password }, { timeoutMs: 60_000 });
    expect(r.code, asText(r)).toBe(0);
    const ticket = r.ssh["askpass-output"]!.replace(/\n$/, "");
    expect(ticket).toMatch(/^ccpt_[A-Za-z0-9]{32}$/);
    const rows = await h.database.sql<{ task_id: string | null; host_id: string; used_at: Date | null }[]>`
      select task_id, host_id, used_at from ssh_tickets where ticket_hash = ${createHash("sha256").update(ticket).digest("hex")}`;
    expect(rows).toEqual([{ task_id: null, host_id: user.hostId, used_at: null }]);
    expect(r.ssh.argv!.trimEnd().split("\n").slice(-3)).toEqual(["-p", "2222", `${user.shortId}@ssh.example.test`]);
    expect(r.ssh["ccp-password-env"]!.trim(), "the login password is not inherited by ssh").toBe("unset");
    // The host's long-lived SSH password never reached the script at all.
    expect(r.out).not.toContain(sshPassword);
    for (const secret of [user.password, sshPassword, ticket]) {
      expect(r.argvs.filter((l) => l.includes(secret))).toEqual([]);
      expect(r.ssh.cmdlines!.includes(secret)).toBe(false);
    }
  }, 90_000);

  it("entry: 10 for a wrong password, typed at the prompt", async () => {
    const r = await runInTerminal(entryCmd(user.shortId), {}, { answers: [[`Password for ${user.shortId}: `, "not-the-password"]] });
    expect(r.code, asText(r)).toBe(10);
    expect(r.out).not.toContain("not-the-password");
    expect(r.ssh.argv).toBeUndefined();
  });

  it("entry: a stopped host is started (202), polled, then connected", async () => {
    const stop = await h.request("POST", `/v1/admin/hosts/${user.hostId}/stop`, { token: admin });
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
    const r = await runInTerminal(entryCmd(user.shortId), { CCP_PASSWORD: user.password }, { timeoutMs: 150_000 });
    expect(r.code, asText(r)).toBe(0);
    expect(r.out).toContain(`Starting host ${user.shortId}`);
    expect(r.out).toMatch(/\[100%\] SSH ready/);
    expect(r.ssh["askpass-output"]).toMatch(/^ccpt_[A-Za-z0-9]{32}\n$/);
    const [host] = await h.database.sql<{ status: string }[]>`select status from hosts where id = ${user.hostId}`;
    expect(host!.status).toBe("running");
  }, 180_000);

  it("bootstrap: a stopped host is started by the flow, with progress lines in order (item 120)", async () => {
    const stop = await h.request("POST", `/v1/admin/hosts/${user.hostId}/stop`, { token: admin });
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
    const r = await runInTerminal(bootstrapCmd(), { CCP_USERNAME: user.username, CCP_PASSWORD: user.password }, { timeoutMs: 150_000 });
    expect(r.code, asText(r)).toBe(0);
    const lines = r.out.split("\n").filter((l) => /^\[[ \d]{3}%\] /.test(l));
    const pct = lines.map((l) => Number(l.slice(1, 4)));
    expect(pct, r.out).toEqual([...pct].sort((a, b) => a - b));
    expect(lines.at(-1)).toBe("[100%] SSH ready");
    expect(r.ssh["askpass-output"]).toMatch(/^ccpt_/);
  }, 180_000);
});

describe("exit codes that need a special worker (item 118)", () => {
  it("15 when the host is not ready within CCP_TIMEOUT (no worker consuming)", async () => {
    await w?.stop();
    w = undefined;
    const u = await userWithHostRow("stopped");
    const r = await runInTerminal(bootstrapCmd(), { CCP_USERNAME: u.username, CCP_PASSWORD: u.password, CCP_TIMEOUT: "1" });
    expect(r.code, asText(r)).toBe(15);
    expect(r.out).toContain("[  5%] Authenticated; waiting for your host");
    const taskId = taskIdOf(r.out)!;
    const cancel = await h.request("POST", `/v1/admin/tasks/${taskId}/cancel`, { token: admin });
    expect(cancel.status, cancel.text).toBe(200);
  });

  it("14 when the host cannot start (host image missing on the engine)", async () => {
    w = await startTestWorker(h, { HOST_IMAGE: "cloud-cli-proxy/does-not-exist:none" });
    try {
      const u = await userWithHostRow("stopped");
      const r = await runInTerminal(bootstrapCmd(), { CCP_USERNAME: u.username, CCP_PASSWORD: u.password }, { timeoutMs: 90_000 });
      expect(r.code, asText(r)).toBe(14);
      expect(r.out).toContain("does-not-exist");
      expect(r.out).toContain("(start_failed)");
    } finally {
      await w.stop();
      w = undefined;
    }
  }, 120_000);

  it("16 with EGRESS_REQUIRED=true and no binding", async () => {
    const strict = await h.withConfig({ EGRESS_REQUIRED: "true" });
    current = strict.app;
    w = await startTestWorker(h, { EGRESS_REQUIRED: "true" });
    try {
      const u = await userWithHostRow("stopped");
      const r = await runInTerminal(bootstrapCmd(), { CCP_USERNAME: u.username, CCP_PASSWORD: u.password }, { timeoutMs: 120_000 });
      expect(r.code, asText(r)).toBe(16);
      expect(r.out).toContain("(egress_binding_missing)");
    } finally {
      current = h.app;
      await w.stop();
      w = undefined;
    }
  }, 150_000);
});

describe("cleanup", () => {
  it("removes the private temporary directory about 30 s after ssh started", async () => {
    expect(tmpDirsToCheck.length).toBeGreaterThan(0);
    const deadline = Date.now() + 45_000;
    while (tmpDirsToCheck.some((d) => existsSync(d)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    for (const d of tmpDirsToCheck) expect(existsSync(d), d).toBe(false);
    // Its parent (our TMPDIR) is still there: only the script's own directory went.
    expect(statSync(join(tmpDirsToCheck[0]!, "..")).isDirectory()).toBe(true);
  }, 60_000);
});
