import { execFile } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEnvironment } from "../../shared/config/env-file.js";
import { projectRoot } from "../../shared/paths.js";
import { cloneTemplateDatabase, createEmptyDatabase } from "../../shared/test/databases.js";

/**
 * docs/operations.md#backup and checklist 181–183: the real deploy/scripts/backup.sh and restore.sh, run
 * with bash against real Postgres with the installed pg_dump / pg_restore.
 */
const BACKUP = join(projectRoot, "deploy/scripts/backup.sh");
const RESTORE = join(projectRoot, "deploy/scripts/restore.sh");
const DUMP_NAME = /^cloud-cli-proxy_\d{8}T\d{6}Z\.dump$/;
const DAY_MS = 86_400_000;

const baseEnv = loadEnvironment();
const databases: { drop: () => Promise<void> }[] = [];
const clients: postgres.Sql[] = [];
const tempDirs: string[] = [];
let source: { url: string; name: string };
let sourceSql: postgres.Sql;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run a script with a small, explicit environment: no DATABASE_URL unless given, ENV_FILE pointing
 * nowhere (never the machine's /etc/cloud-cli-proxy/env), stdin not a terminal.
 */
function run(script: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      "bash",
      [script, ...args],
      {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", ENV_FILE: "/nonexistent/ccp-env", ...env },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    child.stdin?.end();
  });
}

const show = (r: Run) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "ccp-backup-test-"));
  tempDirs.push(d);
  return d;
}

/** A file that looks like an old backup, with its modification time `ageMs` in the past. */
function fakeDump(dir: string, name: string, ageMs: number): string {
  const p = join(dir, name);
  writeFileSync(p, "not really a dump", { mode: 0o600 });
  const t = new Date(Date.now() - ageMs);
  utimesSync(p, t, t);
  return p;
}

const dumpsIn = (dir: string) => readdirSync(dir).filter((f) => DUMP_NAME.test(f)).sort();

async function usersOf(sql: postgres.Sql) {
  return sql`select id, username, role, status, password_hash, token_version, expires_at, created_at
    from users order by id`;
}

/** A restore target: an empty database (no tables), as after a fresh `createdb`. */
async function emptyDatabase() {
  const db = await createEmptyDatabase(baseEnv);
  databases.push(db);
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  clients.push(sql);
  return { ...db, sql };
}

async function tableExists(sql: postgres.Sql, table: string): Promise<boolean> {
  const [row] = await sql`select to_regclass(${`public.${table}`}) is not null as present`;
  return Boolean(row?.present);
}

/** One real dump of the source database, shared by the restore cases. */
let dumpFile: string;

beforeAll(async () => {
  const db = await cloneTemplateDatabase(baseEnv);
  databases.push(db);
  source = db;
  sourceSql = postgres(db.url, { max: 1, onnotice: () => {} });
  clients.push(sourceSql);
  await sourceSql`insert into users (username, role, status, password_hash, expires_at) values
    ('alice', 'user', 'active', '$argon2id$v=19$m=19456,t=2,p=1$YWxpY2U$aGFzaA', null),
    ('bob', 'user', 'disabled', '$argon2id$v=19$m=19456,t=2,p=1$Ym9i$aGFzaA', '2030-01-01T00:00:00Z'),
    ('carol', 'admin', 'active', '$argon2id$v=19$m=19456,t=2,p=1$Y2Fyb2w$aGFzaA', null)`;
  const dir = join(tempDir(), "backups");
  const r = await run(BACKUP, [], { DATABASE_URL: source.url, BACKUP_DIR: dir });
  expect(r.code, show(r)).toBe(0);
  const [name] = dumpsIn(dir);
  dumpFile = join(dir, name!);
});

afterAll(async () => {
  for (const c of clients) await c.end({ timeout: 5 });
  for (const d of databases) await d.drop();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

describe("backup.sh", () => {
  it("writes cloud-cli-proxy_<UTC timestamp>.dump, mode 0600, in a 0700 directory it creates", async () => {
    const dir = join(tempDir(), "new", "backups");
    const before = Date.now();
    const r = await run(BACKUP, [], { DATABASE_URL: source.url, BACKUP_DIR: dir });
    expect(r.code, show(r)).toBe(0);
    const files = readdirSync(dir);
    expect(files, show(r)).toHaveLength(1);
    const name = files[0]!;
    expect(name).toMatch(DUMP_NAME);
    const m = /_(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z\./.exec(name)!;
    const stamp = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
    expect(Math.abs(stamp - before)).toBeLessThan(60_000);
    expect(statSync(join(dir, name)).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    // Path and size on stdout, and the reminder that the key is not in the dump.
    expect(r.stdout).toContain(join(dir, name));
    expect(r.stdout).toContain(`${statSync(join(dir, name)).size} bytes`);
    expect(r.stdout).toMatch(/does NOT contain SECRETS_KEY \(nor ADMIN_JWT_SECRET\)/);
  });

  it("reads DATABASE_URL from ENV_FILE without running anything else in it", async () => {
    const dir = tempDir();
    const canary = join(dir, "canary");
    const envFile = join(dir, "env");
    writeFileSync(
      envFile,
      [
        "# generated",
        `EVIL=$(touch ${canary})`,
        `\`touch ${canary}\``,
        `DATABASE_URL="${source.url}"`,
        "SECRETS_KEY=v1:whatever",
      ].join("\n"),
      { mode: 0o600 },
    );
    const r = await run(BACKUP, [], { ENV_FILE: envFile, BACKUP_DIR: join(dir, "b") });
    expect(r.code, show(r)).toBe(0);
    expect(dumpsIn(join(dir, "b"))).toHaveLength(1);
    expect(existsSync(canary)).toBe(false);
  });

  it("never puts the database password in pg_dump's argv", async () => {
    const password = new URL(source.url).password;
    expect(password.length).toBeGreaterThan(0);
    const dir = tempDir();
    const log = join(dir, "argv");
    const shim = shimDir(`printf '%s\\n' "$@" >> ${log}; exec ${realPgDump} "$@"`);
    const r = await run(BACKUP, [], { DATABASE_URL: source.url, BACKUP_DIR: join(dir, "b"), PATH: `${shim}:${process.env.PATH}` });
    expect(r.code, show(r)).toBe(0);
    const argv = readFileSync(log, "utf8");
    expect(argv).toContain("--format=custom");
    expect(argv).not.toContain(password);
  });

  it("removes dumps older than RETENTION_DAYS and keeps the rest (checklist 182)", async () => {
    const dir = tempDir();
    const old1 = fakeDump(dir, "cloud-cli-proxy_20200101T000000Z.dump", 3 * DAY_MS);
    const old2 = fakeDump(dir, "cloud-cli-proxy_20200102T000000Z.dump", 3 * DAY_MS + 60_000);
    const young = fakeDump(dir, "cloud-cli-proxy_20200103T000000Z.dump", DAY_MS / 2);
    // Only cloud-cli-proxy_*.dump is ever deleted.
    const other = fakeDump(dir, "keep-me.dump", 10 * DAY_MS);
    const r = await run(BACKUP, [], { DATABASE_URL: source.url, BACKUP_DIR: dir, RETENTION_DAYS: "1" });
    expect(r.code, show(r)).toBe(0);
    expect(existsSync(old1), show(r)).toBe(false);
    expect(existsSync(old2)).toBe(false);
    expect(existsSync(young)).toBe(true);
    expect(existsSync(other)).toBe(true);
    expect(dumpsIn(dir)).toHaveLength(2);
    expect(r.stdout).toContain(`removed ${old1}`);
  });

  it("keeps the newest dump even when it is older than RETENTION_DAYS too", async () => {
    const dir = tempDir();
    const old1 = fakeDump(dir, "cloud-cli-proxy_20200101T000000Z.dump", 3 * DAY_MS);
    const old2 = fakeDump(dir, "cloud-cli-proxy_20200102T000000Z.dump", 4 * DAY_MS);
    // A clock that ran behind while pg_dump wrote: the new dump itself is 2 days old, so every
    // dump in the directory is past retention. The newest one must survive.
    const shim = shimDir(
      `${realPgDump} "$@" || exit $?; for a in "$@"; do case "$a" in --file=*) touch -d '2 days ago' "\${a#--file=}";; esac; done`,
    );
    const r = await run(BACKUP, [], {
      DATABASE_URL: source.url,
      BACKUP_DIR: dir,
      RETENTION_DAYS: "1",
      PATH: `${shim}:${process.env.PATH}`,
    });
    expect(r.code, show(r)).toBe(0);
    const left = dumpsIn(dir);
    expect(left, show(r)).toHaveLength(1);
    expect(Date.now() - statSync(join(dir, left[0]!)).mtimeMs).toBeGreaterThan(DAY_MS);
    expect(existsSync(old1)).toBe(false);
    expect(existsSync(old2)).toBe(false);
  });

  describe("on failure: non-zero exit, no partial file, nothing deleted (checklist 183)", () => {
    const cases: [string, () => Record<string, string>][] = [
      ["an unreachable server", () => ({ DATABASE_URL: "postgres://ccp:secret@127.0.0.1:1/ccp" })],
      ["a database that does not exist", () => ({ DATABASE_URL: `${source.url.replace(/\/[^/]*$/, "")}/ccp_no_such_database` })],
      ["a URL that is not postgres://", () => ({ DATABASE_URL: "mysql://ccp:secret@127.0.0.1/ccp" })],
      ["no DATABASE_URL at all", () => ({})],
      [
        "pg_dump dying half way through its file",
        () => ({
          DATABASE_URL: source.url,
          PATH: `${shimDir(`for a in "$@"; do case "$a" in --file=*) echo partial > "\${a#--file=}";; esac; done; echo 'pg_dump: error: boom' >&2; exit 1`)}:${process.env.PATH}`,
        }),
      ],
    ];
    for (const [what, env] of cases) {
      it(`with ${what}`, async () => {
        const dir = tempDir();
        const old = fakeDump(dir, "cloud-cli-proxy_20200101T000000Z.dump", 30 * DAY_MS);
        const before = readdirSync(dir).sort();
        const r = await run(BACKUP, [], { ...env(), BACKUP_DIR: dir, RETENTION_DAYS: "1" });
        expect(r.code, show(r)).not.toBe(0);
        expect(r.stderr).toMatch(/backup: error: /);
        expect(readdirSync(dir).sort(), show(r)).toEqual(before);
        expect(existsSync(old)).toBe(true);
      });
    }

    it("with an unwritable BACKUP_DIR", async () => {
      // root ignores directory permissions; a path under a regular file fails for everyone.
      const dir = tempDir();
      writeFileSync(join(dir, "file"), "");
      const r = await run(BACKUP, [], { DATABASE_URL: source.url, BACKUP_DIR: join(dir, "file", "backups") });
      expect(r.code, show(r)).not.toBe(0);
      expect(r.stderr).toMatch(/backup: error: /);
      expect(readdirSync(dir)).toEqual(["file"]);
    });
  });

  for (const value of ["0", "abc", "-1", "1.5", " "]) {
    it(`exits 1 for RETENTION_DAYS=${JSON.stringify(value)} before doing anything`, async () => {
      const dir = join(tempDir(), "b");
      const r = await run(BACKUP, [], { DATABASE_URL: source.url, BACKUP_DIR: dir, RETENTION_DAYS: value });
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toContain("RETENTION_DAYS must be a positive integer");
      expect(existsSync(dir)).toBe(false);
    });
  }
});

describe("restore.sh", () => {
  it("restores a dump into an empty database with the same users (checklist 181)", async () => {
    const target = await emptyDatabase();
    const r = await run(RESTORE, [dumpFile, "--yes"], { DATABASE_URL: target.url });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/does NOT contain SECRETS_KEY/);
    const restored = await usersOf(target.sql);
    expect(restored.map((u) => u.username).sort()).toEqual(["alice", "bob", "carol"]);
    expect(restored).toEqual(await usersOf(sourceSql));
    // The migration journal comes along, so the api sees a current schema and migrates nothing.
    const journal = (sql: postgres.Sql) => sql`select hash, created_at from drizzle.__drizzle_migrations order by id`;
    expect(await journal(target.sql)).toEqual(await journal(sourceSql));
  });

  it("replaces what is there when restoring over a live database, and can run twice", async () => {
    const target = await emptyDatabase();
    expect((await run(RESTORE, [dumpFile, "--yes"], { DATABASE_URL: target.url })).code).toBe(0);
    await target.sql`delete from users where username = 'bob'`;
    await target.sql`insert into users (username, password_hash) values ('mallory', 'x')`;
    const r = await run(RESTORE, [dumpFile, "--yes"], { DATABASE_URL: target.url });
    expect(r.code, show(r)).toBe(0);
    expect(await usersOf(target.sql)).toEqual(await usersOf(sourceSql));
  });

  it("refuses without --yes when there is no terminal to confirm on", async () => {
    const target = await emptyDatabase();
    const r = await run(RESTORE, [dumpFile], { DATABASE_URL: target.url });
    expect(r.code, show(r)).not.toBe(0);
    expect(r.stderr).toContain("--yes");
    expect(await tableExists(target.sql, "users")).toBe(false);
  });

  it("refuses while a worker is connected to the database, unless --force", async () => {
    const target = await emptyDatabase();
    const worker = postgres(target.url, { max: 1, onnotice: () => {}, connection: { application_name: "ccp-worker" } });
    clients.push(worker);
    await worker`select 1`;
    const refused = await run(RESTORE, [dumpFile, "--yes"], { DATABASE_URL: target.url });
    expect(refused.code, show(refused)).not.toBe(0);
    expect(refused.stderr).toContain("ccp-worker");
    expect(refused.stderr).toContain("--force");
    expect(await tableExists(target.sql, "users")).toBe(false);

    const forced = await run(RESTORE, [dumpFile, "--yes", "--force"], { DATABASE_URL: target.url });
    expect(forced.code, show(forced)).toBe(0);
    expect(forced.stderr).toContain("ccp-worker");
    expect(await usersOf(target.sql)).toEqual(await usersOf(sourceSql));
    await worker.end({ timeout: 5 });
  });

  it("rejects a file that is not a custom-format dump, without touching the database", async () => {
    const target = await emptyDatabase();
    const bogus = join(tempDir(), "cloud-cli-proxy_20200101T000000Z.dump");
    writeFileSync(bogus, "select 1;\n");
    const r = await run(RESTORE, [bogus, "--yes"], { DATABASE_URL: target.url });
    expect(r.code, show(r)).not.toBe(0);
    expect(r.stderr).toContain("pg_restore --list");
    const missing = await run(RESTORE, [join(tempDir(), "nope.dump"), "--yes"], { DATABASE_URL: target.url });
    expect(missing.code, show(missing)).not.toBe(0);
    expect(await tableExists(target.sql, "users")).toBe(false);
  });

  it("exits non-zero when the restore itself fails", async () => {
    const r = await run(RESTORE, [dumpFile, "--yes"], { DATABASE_URL: "postgres://ccp:secret@127.0.0.1:1/ccp" });
    expect(r.code, show(r)).not.toBe(0);
    expect(r.stderr).toMatch(/restore: error: /);
  });

  it("prints usage for unknown options", async () => {
    const r = await run(RESTORE, [dumpFile, "--now"], {});
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain("usage: restore.sh");
  });
});

// --- PATH shims for pg_dump --------------------------------------------------------------------

const realPgDump = (() => {
  for (const dir of (process.env.PATH ?? "/usr/bin").split(":")) {
    const p = join(dir, "pg_dump");
    if (dir && existsSync(p)) return p;
  }
  return "/usr/bin/pg_dump";
})();

/** A directory holding a `pg_dump` that runs `body` (bash); put it first in PATH. */
function shimDir(body: string): string {
  const dir = join(tempDir(), "shim");
  mkdirSync(dir);
  writeFileSync(join(dir, "pg_dump"), `#!/usr/bin/env bash\n${body}\n`);
  chmodSync(join(dir, "pg_dump"), 0o755);
  return dir;
}
