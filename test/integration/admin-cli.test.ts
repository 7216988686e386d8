import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../shared/paths.js";
import { type ApiHarness, createApiHarness, TEST_ADMIN_PASSWORD, TEST_SECRETS_KEY } from "../../shared/test/api-harness.js";
import { buildDist, freePort } from "../../shared/test/processes.js";
import { insertHostRow, insertTaskRow } from "../../shared/test/rows.js";

/**
 * The break-glass admin CLI (README "Admin CLI"): the built `node dist/main.js admin …` against this
 * file's database and Redis prefix, each command's output and exit code (0 ok, 1 failure, 2 usage),
 * and its effects seen through the API.
 */
let h: ApiHarness;
let env: Record<string, string>;
const sql = () => h.database.sql;

beforeAll(async () => {
  buildDist();
  h = await createApiHarness();
  env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    DATABASE_URL: h.env.DATABASE_URL!,
    REDIS_URL: h.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    REDIS_PREFIX: h.prefix,
    SECRETS_KEY: TEST_SECRETS_KEY,
    SECRETS_KEY_PREVIOUS: "",
    ADMIN_USERNAME: "admin",
    LOG_LEVEL: "info",
  };
}, 180_000);
afterAll(async () => {
  await h?.close();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["dist/main.js", "admin", ...args], {
      cwd: projectRoot,
      env: { ...env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += String(d)));
    child.stderr.on("data", (d) => (stderr += String(d)));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? "");
  });
}
const show = (r: Run) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
/** An expected failure: one line, no stack trace. */
const noStack = (r: Run) => expect(r.stderr, show(r)).not.toMatch(/^\s+at /m);

describe("usage", () => {
  it.each([
    [[]],
    [["frobnicate"]],
    [["list-hosts", "--bogus"]],
    [["list-hosts", "--status", "sideways"]],
    [["list-tasks", "--limit", "0"]],
    [["list-tasks", "--limit", "many"]],
    [["cancel-task"]],
    [["cancel-task", "a", "b"]],
    [["create-user"]],
    [["rebuild-outdated", "extra"]],
  ])("%j exits 2 with the usage on stderr", async (args) => {
    const r = await cli(args);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain("usage: main.js admin");
    expect(r.stdout).toBe("");
  });

  it("help prints the usage and exits 0", async () => {
    const r = await cli(["help"]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain("rebuild-outdated");
  });

  it("a missing DATABASE_URL is a failure naming the variable", async () => {
    const r = await cli(["list-hosts"], { env: { DATABASE_URL: "" } });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain("DATABASE_URL");
  });
});

describe("create-user", () => {
  it("prints a generated password once; the user can log in with it", async () => {
    const r = await cli(["create-user", "--username", "cli-alice"]);
    expect(r.code, show(r)).toBe(0);
    const password = /password \(shown once\): (\S+)/.exec(r.stdout)?.[1];
    expect(password, show(r)).toBeTruthy();
    expect(r.stdout).toMatch(/user cli-alice created \(id [0-9a-f-]{36}\)/);
    const login = await h.login("cli-alice", password!);
    expect(login.status, login.text).toBe(200);
    const [ev] = await sql()<{ actor_id: string | null }[]>`select actor_id from events where type = 'user.created' and metadata->>'username' = 'cli-alice'`;
    const [adminRow] = await sql()<{ id: string }[]>`select id from users where username = 'admin'`;
    expect(ev!.actor_id).toBe(adminRow!.id);
  });

  it("--password-stdin takes the password from stdin and prints none; --json for scripts", async () => {
    const r = await cli(["create-user", "--username", "cli-bob", "--password-stdin", "--json"], { stdin: "bob-password-123\n" });
    expect(r.code, show(r)).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body.user).toMatchObject({ username: "cli-bob", role: "user", status: "active" });
    expect(body).not.toHaveProperty("password");
    expect(r.stdout + r.stderr).not.toContain("bob-password-123");
    expect((await h.login("cli-bob", "bob-password-123")).status).toBe(200);
  });

  it("a taken username fails with exit 1 and its code; a too short password is a usage error", async () => {
    const taken = await cli(["create-user", "--username", "cli-alice"]);
    expect(taken.code, show(taken)).toBe(1);
    expect(taken.stderr).toContain("username_taken");
    noStack(taken);
    const short = await cli(["create-user", "--username", "cli-carol", "--password-stdin"], { stdin: "short\n" });
    expect(short.code, show(short)).toBe(2);
    expect(short.stderr).toContain("password");
    const none = await cli(["create-user", "--username", "cli-carol", "--password-stdin"]);
    expect(none.code, show(none)).toBe(2);
  });
});

describe("reset-password", () => {
  it("a user's: new generated password, old sessions end", async () => {
    const user = await h.createUser();
    expect((await h.request("GET", "/v1/user/hosts", { token: user.token })).status).toBe(200);
    const r = await cli(["reset-password", "--username", user.username]);
    expect(r.code, show(r)).toBe(0);
    const password = /new password \(shown once\): (\S+)/.exec(r.stdout)?.[1];
    expect(password, show(r)).toBeTruthy();
    expect(r.stderr).toBe(""); // no ADMIN_PASSWORD note for a user
    expect((await h.request("GET", "/v1/user/hosts", { token: user.token })).status).toBe(401);
    expect((await h.login(user.username, user.password)).status).toBe(401);
    expect((await h.login(user.username, password!)).status).toBe(200);
    const [ev] = await sql()<{ n: number }[]>`select count(*)::int as n from events where type = 'user.password.reset' and user_id = ${user.id}`;
    expect(ev!.n).toBe(1);
  });

  it("the admin's (the default account): sessions end, the note about ADMIN_PASSWORD; --stdin sets it back", async () => {
    const token = await h.adminToken();
    const r = await cli(["reset-password"]);
    expect(r.code, show(r)).toBe(0);
    const password = /new password \(shown once\): (\S+)/.exec(r.stdout)?.[1];
    expect(password, show(r)).toBeTruthy();
    expect(r.stderr).toContain("ADMIN_PASSWORD");
    expect((await h.request("GET", "/v1/admin/users", { token })).status).toBe(401);
    expect((await h.login("admin", password!)).status).toBe(200);

    const back = await cli(["reset-password", "--stdin", "--json"], { stdin: `${TEST_ADMIN_PASSWORD}\n` });
    expect(back.code, show(back)).toBe(0);
    const body = JSON.parse(back.stdout);
    expect(body.user.username).toBe("admin");
    expect(body).not.toHaveProperty("password");
    expect(back.stdout).not.toContain(TEST_ADMIN_PASSWORD);
    expect((await h.login("admin", TEST_ADMIN_PASSWORD)).status).toBe(200);
  });

  it("an unknown account fails with exit 1, no stack", async () => {
    const r = await cli(["reset-password", "--username", "nobody-at-all"]);
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain("user_not_found");
    noStack(r);
  });
});

describe("list-hosts, list-tasks, cancel-task", () => {
  let hostId: string;
  let shortId: string;
  let createTask: string;

  beforeAll(async () => {
    const user = await h.createUser();
    const res = await h.request("POST", "/v1/admin/hosts", { token: await h.adminToken(), body: { user_id: user.id } });
    expect(res.status, res.text).toBe(202);
    hostId = res.body.host.id;
    shortId = res.body.host.short_id;
    createTask = res.body.task_id;
  });

  it("list-hosts prints a table and --json the API's host objects", async () => {
    const r = await cli(["list-hosts"]);
    expect(r.code, show(r)).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+SHORT\s+OWNER\s+STATUS\s+DESIRED\s+IMAGE\s+EGRESS\s+CREATED$/);
    expect(lines.find((l) => l.startsWith(hostId))).toMatch(new RegExp(`${shortId}\\s+\\S+\\s+pending\\s+running\\s+current\\s+-`));
    const j = await cli(["list-hosts", "--json", "--status", "pending"]);
    expect(j.code, show(j)).toBe(0);
    const body = JSON.parse(j.stdout);
    expect(body.hosts.map((x: { id: string }) => x.id)).toContain(hostId);
    expect(body.hosts[0]).toHaveProperty("image_outdated", false);
    // Secrets never leave: the host objects carry none.
    expect(j.stdout).not.toMatch(/ssh_password|_enc|private/);
    const none = await cli(["list-hosts", "--status", "rebuilding"]);
    expect(none.stdout).toBe("no rebuilding hosts\n");
  });

  it("list-tasks: newest first, filtered, limited", async () => {
    const r = await cli(["list-tasks", "--status", "pending"]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${createTask}\\s+host\\.create\\s+pending\\s+${hostId}\\s+0%`, "m"));
    const j = await cli(["list-tasks", "--json", "--limit", "1"]);
    const body = JSON.parse(j.stdout);
    expect(body.tasks).toHaveLength(1);
    expect(body.limit).toBe(1);
  });

  it("cancel-task cancels a pending task; again is a failure; unknown ids are not found", async () => {
    const r = await cli(["cancel-task", createTask]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe(`task ${createTask} (host.create) canceled\n`);
    const [t] = await sql()<{ status: string; error_message: string }[]>`select status, error_message from tasks where id = ${createTask}`;
    expect(t).toEqual({ status: "canceled", error_message: "canceled by admin" });

    const again = await cli(["cancel-task", createTask]);
    expect(again.code, show(again)).toBe(1);
    expect(again.stderr).toContain("task_not_cancelable");
    noStack(again);
    for (const id of ["00000000-0000-4000-8000-000000000000", "not-a-uuid"]) {
      const missing = await cli(["cancel-task", id]);
      expect(missing.code, show(missing)).toBe(1);
      expect(missing.stderr).toContain("task_not_found");
      noStack(missing);
    }
  });

  it("cancel-task of a running task asks the worker to stop it", async () => {
    const id = await insertTaskRow(sql(), { kind: "host.start", status: "running", hostId, startedAt: new Date() });
    const r = await cli(["cancel-task", id, "--json"]);
    expect(r.code, show(r)).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "cancel_requested", task: { id, cancel_requested: true } });
    await sql()`update tasks set status = 'canceled', finished_at = now() where id = ${id}`;
  });
});

describe("rebuild-outdated", () => {
  it("dry run lists, the real run requests and queues one rebuild per outdated host", async () => {
    await sql()`insert into engine_images (engine_id, host_image, host_image_id, gateway_image, gateway_image_id)
      values ('default', 'h', 'sha256:new-host', 'g', 'sha256:gw') on conflict (engine_id) do nothing`;
    const outdated = await insertHostRow(sql(), { status: "running" });
    await sql()`update hosts set image_id = 'sha256:old-host', gateway_image_id = 'sha256:gw' where id = ${outdated.id}`;

    const dry = await cli(["rebuild-outdated", "--dry-run"]);
    expect(dry.code, show(dry)).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`^${outdated.id}\\s+${outdated.shortId}\\s+\\S+\\s+running$`, "m"));
    expect(dry.stdout).toContain("dry run: 1 host(s) would be rebuilt");
    const [before] = await sql()<{ n: number }[]>`select count(*)::int as n from tasks where host_id = ${outdated.id}`;
    expect(before!.n).toBe(0);

    const r = await cli(["rebuild-outdated", "--json"]);
    expect(r.code, show(r)).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body.requested).toHaveLength(1);
    expect(body.deferred_task_ids).toEqual([]);
    const taskId = body.requested[0].task_id as string;
    const [t] = await sql()<{ kind: string; payload: unknown }[]>`select kind, payload from tasks where id = ${taskId}`;
    expect(t).toEqual({ kind: "host.rebuild", payload: { mode: "preserve-home" } });
    expect((await h.queues.get("host-ops").getJob(taskId))?.name).toBe("host.rebuild");

    const again = await cli(["rebuild-outdated"]);
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toContain("no outdated hosts");
  });

  it("with Redis down the tasks stay pending for the sweeper, and the command says so", async () => {
    const outdated = await insertHostRow(sql(), { status: "running" });
    await sql()`update hosts set image_id = 'sha256:old-host', gateway_image_id = 'sha256:gw' where id = ${outdated.id}`;
    const deadPort = await freePort();
    const r = await cli(["rebuild-outdated"], { env: { REDIS_URL: `redis://127.0.0.1:${deadPort}` } });
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).toContain("Redis did not answer; 1 task(s) stay pending");
    const [t] = await sql()<{ status: string }[]>`select status from tasks where host_id = ${outdated.id} and kind = 'host.rebuild'`;
    expect(t!.status).toBe("pending");
  });

  it("a skipped host makes the exit code 1 (the others still go ahead)", async () => {
    const owner = (await sql()<{ id: string }[]>`insert into users (username, status, password_hash) values ('cli-disabled', 'disabled', 'x') returning id`)[0]!.id;
    const refused = await insertHostRow(sql(), { status: "running", userId: owner });
    await sql()`update hosts set image_id = 'sha256:old-host', gateway_image_id = 'sha256:gw' where id = ${refused.id}`;
    const r = await cli(["rebuild-outdated"]);
    expect(r.code, show(r)).toBe(1);
    expect(r.stdout).toContain(`skipped ${refused.shortId}`);
    expect(r.stdout).toContain("[user_inactive]");
  });
});

describe("engines", () => {
  let dir: string;
  beforeAll(() => {
    // A CA and a client pair for a tcp engine, minted here (argv only, into a temporary directory).
    dir = mkdtempSync(join(tmpdir(), "ccp-cli-engines-"));
    const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    const ec = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"];
    openssl(...ec, "ca.key");
    openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=cli-test-ca", "-days", "2", "-out", "ca.pem");
    openssl(...ec, "client.key");
    openssl("req", "-new", "-key", "client.key", "-subj", "/CN=cli-test-worker", "-out", "client.csr");
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-out", "client.pem");
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    [["engines"]],
    [["engines", "frobnicate"]],
    [["engines", "list", "extra"]],
    [["engines", "show"]],
    [["engines", "add", "cli-x"]],
    [["engines", "cordon", "cli-x", "--label", "a=b"]],
    [["engines", "add", "Bad_Name", "--endpoint", "unix:///var/run/docker.sock"]],
    [["engines", "add", "cli-x", "--endpoint", "unix:///var/run/docker.sock", "--label", "novalue"]],
    [["engines", "add", "cli-x", "--endpoint", "unix:///var/run/docker.sock", "--max-hosts", "ten"]],
    [["engines", "add", "cli-x", "--endpoint", "tcp://10.0.0.5:2376", "--tls-ca", "/nonexistent/ca.pem"]],
    // Refused by the service's own validation (a tcp endpoint without TLS): a usage error too.
    [["engines", "add", "cli-x", "--endpoint", "tcp://10.0.0.5:2376"]],
  ])("%j exits 2 and writes nothing", async (args) => {
    const r = await cli(args);
    expect(r.code, show(r)).toBe(2);
    noStack(r);
    expect(await sql()`select id from engines where id = 'cli-x'`).toHaveLength(0);
  });

  it("add, list, show, update, cordon, drain, uncordon, remove: the API's verbs, the same events", async () => {
    const add = await cli(["engines", "add", "cli-unix", "--endpoint", "unix:///run/cli.sock", "--memory-mb", "8192", "--cpus", "4", "--max-hosts", "3", "--label", "zone=a", "--label", "disk=ssd"]);
    expect(add.code, show(add)).toBe(0);
    expect(add.stdout).toContain("engine cli-unix added");
    const list = await cli(["engines", "list"]);
    expect(list.code, show(list)).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+STATE\s+HEALTH/m);
    expect(list.stdout).toMatch(/^cli-unix\s+active\s+no_worker\s+unix:\/\/\/run\/cli\.sock\s+0\/3\s+0\/8192\s+0\/4\s+(zone=a,disk=ssd|disk=ssd,zone=a)/m);
    expect(list.stdout).toMatch(/^default\s+active/m);
    const shown = await cli(["engines", "show", "cli-unix", "--json"]);
    expect(shown.code, show(shown)).toBe(0);
    expect(JSON.parse(shown.stdout).engine).toMatchObject({ id: "cli-unix", capacity: { memory_mb: 8192, cpus: 4, max_hosts: 3 }, labels: { zone: "a", disk: "ssd" } });

    const upd = await cli(["engines", "update", "cli-unix", "--max-hosts", "none", "--label", "zone=b", "--json"]);
    expect(upd.code, show(upd)).toBe(0);
    expect(JSON.parse(upd.stdout).engine).toMatchObject({ capacity: { max_hosts: null }, labels: { zone: "b" } });
    for (const [verb, state] of [["cordon", "cordoned"], ["drain", "draining"], ["uncordon", "active"]]) {
      const r = await cli(["engines", verb!, "cli-unix", "--json"]);
      expect(r.code, show(r)).toBe(0);
      expect(JSON.parse(r.stdout).engine.state).toBe(state);
    }
    const filtered = await cli(["engines", "list", "--state", "cordoned", "--json"]);
    expect(JSON.parse(filtered.stdout).engines).toEqual([]);

    const host = await insertHostRow(sql());
    await sql()`update hosts set engine_id = 'cli-unix' where id = ${host.id}`;
    const busy = await cli(["engines", "remove", "cli-unix"]);
    expect(busy.code, show(busy)).toBe(1);
    expect(busy.stderr).toContain("[engine_in_use]");
    noStack(busy);
    await sql()`delete from hosts where id = ${host.id}`;
    const rm = await cli(["engines", "remove", "cli-unix"]);
    expect(rm.code, show(rm)).toBe(0);
    const protectedDefault = await cli(["engines", "remove", "default"]);
    expect(protectedDefault.code, show(protectedDefault)).toBe(1);
    expect(protectedDefault.stderr).toContain("[engine_protected]");
    const missing = await cli(["engines", "show", "cli-unix"]);
    expect(missing.code, show(missing)).toBe(1);
    expect(missing.stderr).toContain("[engine_not_found]");

    const events = await sql()<{ type: string }[]>`select type from events where metadata->>'engine_id' = 'cli-unix' order by created_at, id`;
    expect(events.map((e) => e.type)).toEqual(["engine.added", "engine.updated", "engine.cordoned", "engine.draining", "engine.uncordoned", "engine.removed"]);
  });

  it("a tcp engine from TLS files: fingerprints shown, the key printed nowhere and stored encrypted", async () => {
    const key = readFileSync(join(dir, "client.key"), "utf8");
    const keyBody = key.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
    const files = ["--tls-ca", join(dir, "ca.pem"), "--tls-cert", join(dir, "client.pem"), "--tls-key", join(dir, "client.key")];
    const add = await cli(["engines", "add", "cli-tcp", "--endpoint", "tcp://10.0.0.5:2376", ...files]);
    expect(add.code, show(add)).toBe(0);
    expect(add.stdout).toMatch(/^tls:\s+ca sha256 [0-9a-f]{64}, cert sha256 [0-9a-f]{64}$/m);
    const json = await cli(["engines", "show", "cli-tcp", "--json"]);
    for (const r of [add, json]) {
      expect(r.stdout + r.stderr).not.toContain("PRIVATE KEY");
      for (const line of key.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"))) expect(r.stdout + r.stderr).not.toContain(line);
    }
    const [row] = await sql()<{ tls_key_enc: string }[]>`select tls_key_enc from engines where id = 'cli-tcp'`;
    expect(row!.tls_key_enc.startsWith("v")).toBe(true);
    expect(row!.tls_key_enc).not.toContain(keyBody.slice(0, 40));
  });
});
