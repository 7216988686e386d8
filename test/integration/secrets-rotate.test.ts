import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEnvironment } from "../../shared/config/env-file.js";
import { createSecretBox, encryptLegacy, type SecretLocation, SecretUnreadableError } from "../../shared/crypto/secrets.js";
import { createDatabase, type Database } from "../../shared/db/client.js";
import { projectRoot } from "../../shared/paths.js";
import { rotateSecrets, SECRET_COLUMNS } from "../../shared/services/secrets/rotate.js";
import { cloneTemplateDatabase } from "../../shared/test/databases.js";

/**
 * docs/operations.md#rotate-keys and checklist 184: `node dist/main.js secrets:rotate` (run from source through
 * tsx, same entry point) re-encrypts every stored secret under the current key.
 */
const key = (version: number) => `v${version}:${randomBytes(32).toString("base64")}`;
const K1 = key(1);
const K2 = key(2);
const K3 = key(3);
/**
 * What a deployment from before the binding has stored: unbound `v<N>:` ciphertexts (issue 10
 * docs/api.md#egress-ips). Rotation is also their migration to the bound format.
 */
const legacy1 = (p: string) => encryptLegacy(K1, p);
const legacy3 = (p: string) => encryptLegacy(K3, p);
/** The SecretLocation of a snapshot key `table.column.key`. */
const at = (k: string) => {
  const [table, column, row] = k.split(".");
  return { table, column, row } as SecretLocation;
};

const baseEnv = loadEnvironment();
let db: { url: string; drop: () => Promise<void> };
let sql: postgres.Sql;
let database: Database;

/** Every secret column of every row: `table.column.key` → ciphertext (nulls left out). */
async function snapshot(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [table, { key: pk, columns }] of Object.entries(SECRET_COLUMNS)) {
    const rows = await sql.unsafe<Record<string, string | null>[]>(
      `select ${pk}::text as pk, ${columns.join(", ")} from ${table} order by ${pk}`,
    );
    for (const row of rows) for (const c of columns) if (row[c] != null) out.set(`${table}.${c}.${row.pk}`, row[c]!);
  }
  return out;
}

function runRotate(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "main.ts", "secrets:rotate"],
      { cwd: projectRoot, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", DATABASE_URL: db.url, ...env }, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}
const show = (r: { code: number | null; stdout: string; stderr: string }) => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;

/** Plaintexts of everything seeded, by snapshot key. */
const plaintexts = new Map<string, string>();

async function seedHost(username: string, secrets: { ssh: string; internal?: string; hostKey?: string }, encrypt = legacy1) {
  const [user] = await sql`insert into users (username, password_hash) values (${username}, 'x') returning id`;
  const shortId = randomBytes(3).toString("hex");
  const [host] = await sql`insert into hosts (user_id, short_id, ssh_password_enc, internal_key_private_enc, host_key_private_enc)
    values (${user!.id}, ${shortId}, ${encrypt(secrets.ssh)},
            ${secrets.internal ? encrypt(secrets.internal) : null}, ${secrets.hostKey ? encrypt(secrets.hostKey) : null})
    returning id`;
  const id = host!.id as string;
  plaintexts.set(`hosts.ssh_password_enc.${id}`, secrets.ssh);
  if (secrets.internal) plaintexts.set(`hosts.internal_key_private_enc.${id}`, secrets.internal);
  if (secrets.hostKey) plaintexts.set(`hosts.host_key_private_enc.${id}`, secrets.hostKey);
  return id;
}

beforeAll(async () => {
  db = await cloneTemplateDatabase(baseEnv);
  sql = postgres(db.url, { max: 2, onnotice: () => {} });
  database = createDatabase(db.url, { max: 2 });

  await seedHost("rot-a", { ssh: "host-a-password", internal: "-----internal a-----", hostKey: "-----hostkey a-----" });
  await seedHost("rot-b", { ssh: "host-b-password" });
  const [wg] = await sql`insert into egress_ips (label, ip_address, tunnel_type, wg_private_key_enc, wg_preshared_key_enc)
    values ('wg', '198.51.100.10', 'wireguard', ${legacy1("wg-private")}, ${legacy1("wg-psk")}) returning id`;
  plaintexts.set(`egress_ips.wg_private_key_enc.${wg!.id}`, "wg-private");
  plaintexts.set(`egress_ips.wg_preshared_key_enc.${wg!.id}`, "wg-psk");
  const proxySecrets = JSON.stringify({ password: "proxy-pass", uuid: "b0e1c3d4-0000-4000-8000-000000000001" });
  const [px] = await sql`insert into egress_ips (label, ip_address, tunnel_type, proxy_secrets_enc)
    values ('proxy', '198.51.100.11', 'proxy', ${legacy1(proxySecrets)}) returning id`;
  plaintexts.set(`egress_ips.proxy_secrets_enc.${px!.id}`, proxySecrets);
  await sql`insert into system_keys (name, private_key_enc, public_key)
    values ('ssh_proxy_host_key', ${legacy1("-----proxy host key-----")}, 'ssh-ed25519 AAAA')`;
  plaintexts.set("system_keys.private_key_enc.ssh_proxy_host_key", "-----proxy host key-----");
});

afterAll(async () => {
  await database?.close();
  await sql?.end({ timeout: 5 });
  await db?.drop();
});

// The cases below are one rotation, v1 → v2, taken step by step on the same rows (in order).
describe("secrets:rotate", () => {
  it("knows every encrypted column of the schema", async () => {
    const rows = await sql<{ table_name: string; column_name: string }[]>`
      select table_name, column_name from information_schema.columns
      where table_schema = 'public' and column_name like '%\\_enc' order by 1, 2`;
    const known = Object.entries(SECRET_COLUMNS).flatMap(([t, { columns }]) => columns.map((c) => `${t}.${c}`));
    expect(rows.map((r) => `${r.table_name}.${r.column_name}`).sort()).toEqual(known.sort());
  });

  it("re-encrypts every secret under the new key, bound to its row, keeping every plaintext", async () => {
    const before = await snapshot();
    expect([...before.keys()].sort()).toEqual([...plaintexts.keys()].sort());
    expect([...before.values()].every((v) => v.startsWith("v1:"))).toBe(true);

    const r = await runRotate({ SECRETS_KEY: K2, SECRETS_KEY_PREVIOUS: K1 });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain("5 rows (8 values) re-encrypted with key v2");

    const after = await snapshot();
    const box21 = createSecretBox(K2, K1);
    expect([...after.keys()].sort()).toEqual([...plaintexts.keys()].sort());
    for (const [k, v] of after) {
      expect(v, k).toMatch(/^v2a:/);
      expect(box21.decrypt(v, at(k)), k).toBe(plaintexts.get(k));
    }
    // Bound now: each value decrypts only where it is. Before the run, a legacy value copied to
    // another row would have decrypted there.
    const [hostA, hostB] = [...after.keys()].filter((k) => k.startsWith("hosts.ssh_password_enc."));
    expect(box21.decrypt(before.get(hostA!)!, at(hostB!))).toBe(plaintexts.get(hostA!));
    expect(() => box21.decrypt(after.get(hostA!)!, at(hostB!))).toThrow(SecretUnreadableError);
    // Nothing secret in what the command printed.
    for (const p of plaintexts.values()) expect(r.stdout + r.stderr).not.toContain(p);

    const events = await sql`select level, metadata from events where type = 'secrets.rotated'`;
    expect(events).toEqual([{ level: "info", metadata: { to_version: 2, rows: 5 } }]);
  });

  it("changes nothing when run again", async () => {
    const before = await snapshot();
    const r = await runRotate({ SECRETS_KEY: K2, SECRETS_KEY_PREVIOUS: K1 });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain("0 rows (0 values)");
    expect(await snapshot()).toEqual(before);
    expect((await sql`select count(*)::int as n from events where type = 'secrets.rotated'`)[0]!.n).toBe(1);
  });

  it("leaves every secret readable once the previous key is removed", async () => {
    const only2 = createSecretBox(K2);
    for (const [k, v] of await snapshot()) expect(only2.decrypt(v, at(k)), k).toBe(plaintexts.get(k));
    // And the command itself runs with only v2 configured.
    const r = await runRotate({ SECRETS_KEY: K2, SECRETS_KEY_PREVIOUS: "" });
    expect(r.code, show(r)).toBe(0);
  });

  it("fails naming a key version it does not have, leaving that row untouched and doing the rest", async () => {
    // Host c: one secret under v3 (unknown) next to one under v1 (known): the row moves as a whole,
    // so neither changes. Host d: all under v1, rotated as usual.
    const [user] = await sql`insert into users (username, password_hash) values ('rot-c', 'x') returning id`;
    const stuckSsh = legacy3("host-c-password");
    const stuckInternal = legacy1("-----internal c-----");
    const [stuck] = await sql`insert into hosts (user_id, short_id, ssh_password_enc, internal_key_private_enc)
      values (${user!.id}, 'c00c00', ${stuckSsh}, ${stuckInternal}) returning id`;
    const movable = await seedHost("rot-d", { ssh: "host-d-password" });

    const r = await runRotate({ SECRETS_KEY: K2, SECRETS_KEY_PREVIOUS: K1 });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain("v3");
    expect(r.stderr).toContain(`hosts.ssh_password_enc of ${stuck!.id}`);
    expect(r.stderr).not.toContain("host-c-password");

    const [row] = await sql`select ssh_password_enc, internal_key_private_enc from hosts where id = ${stuck!.id}`;
    expect(row).toEqual({ ssh_password_enc: stuckSsh, internal_key_private_enc: stuckInternal });
    const [moved] = await sql`select ssh_password_enc from hosts where id = ${movable}`;
    expect(moved!.ssh_password_enc).toMatch(/^v2a:/);
    expect(createSecretBox(K2).decrypt(moved!.ssh_password_enc, at(`hosts.ssh_password_enc.${movable}`))).toBe("host-d-password");

    // With the missing key supplied, the same command finishes the job.
    const fixed = await runRotate({ SECRETS_KEY: K2, SECRETS_KEY_PREVIOUS: `${K1},${K3}` });
    expect(fixed.code, show(fixed)).toBe(0);
    const [done] = await sql`select ssh_password_enc, internal_key_private_enc from hosts where id = ${stuck!.id}`;
    const only2 = createSecretBox(K2);
    expect(only2.decrypt(done!.ssh_password_enc, at(`hosts.ssh_password_enc.${stuck!.id}`))).toBe("host-c-password");
    expect(only2.decrypt(done!.internal_key_private_enc, at(`hosts.internal_key_private_enc.${stuck!.id}`))).toBe("-----internal c-----");
    plaintexts.set(`hosts.ssh_password_enc.${stuck!.id}`, "host-c-password");
    plaintexts.set(`hosts.internal_key_private_enc.${stuck!.id}`, "-----internal c-----");
  });

  it("migrates legacy ciphertexts that are already under the current key (no key change)", async () => {
    const before = await snapshot();
    const e = await seedHost("rot-e", { ssh: "host-e-password", internal: "-----internal e-----" }, (p) => encryptLegacy(K2, p));
    const [row] = await sql`select ssh_password_enc from hosts where id = ${e}`;
    expect(row!.ssh_password_enc).toMatch(/^v2:/);

    const r = await runRotate({ SECRETS_KEY: K2 });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain("1 rows (2 values) re-encrypted with key v2");
    const after = await snapshot();
    for (const [k, v] of before) expect(after.get(k), k).toBe(v);
    const ssh = after.get(`hosts.ssh_password_enc.${e}`)!;
    expect(ssh).toMatch(/^v2a:/);
    const box = createSecretBox(K2);
    expect(box.decrypt(ssh, at(`hosts.ssh_password_enc.${e}`))).toBe("host-e-password");
    expect(() => box.decrypt(ssh, at(`hosts.internal_key_private_enc.${e}`))).toThrow(SecretUnreadableError);
  });

  it("does not overwrite a value that is already current (service level)", async () => {
    const before = await snapshot();
    const result = await rotateSecrets({ db: database.db, secrets: createSecretBox(K2) });
    expect(result.rows).toBe(0);
    expect(await snapshot()).toEqual(before);
  });

  it("pages through every row (service level, two rows per page, to v3)", async () => {
    const before = await snapshot();
    const result = await rotateSecrets({ db: database.db, secrets: createSecretBox(K3, K2), pageSize: 2 });
    // Snapshot keys are table.column.pk: rows are the distinct table.pk.
    const rows = new Set([...before.keys()].map((k) => k.replace(/^([^.]+)\.[^.]+\./, "$1.")));
    expect(result.rows).toBe(rows.size);
    expect(result.values).toBe(before.size);
    const only3 = createSecretBox(K3);
    for (const [k, v] of await snapshot()) {
      expect(v, k).toMatch(/^v3a:/);
      expect(only3.decrypt(v, at(k)), k).toBe(createSecretBox(K2).decrypt(before.get(k)!, at(k)));
    }
  });

  it("exits naming the variable when SECRETS_KEY is missing or invalid", async () => {
    const missing = await runRotate({ SECRETS_KEY: "" });
    expect(missing.code, show(missing)).toBe(2);
    expect(missing.stderr).toContain("SECRETS_KEY is required");
    const bad = await runRotate({ SECRETS_KEY: K2, SECRETS_KEY_PREVIOUS: "v1:short" });
    expect(bad.code, show(bad)).toBe(2);
    expect(bad.stderr).toContain("SECRETS_KEY_PREVIOUS is invalid");
  });
});
