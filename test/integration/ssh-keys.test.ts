import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, type TestUser, createApiHarness } from "../../shared/test/api-harness.js";

/**
 * SSH keys, admin-managed and self-service, and tenant isolation (docs/api.md#ssh-keys, docs/api.md#authorization;
 * ). Fixture keys come from the real `ssh-keygen`, so fingerprints
 * and formats are checked against OpenSSH itself rather than against our own parser.
 */
const KEYGEN = "/usr/bin/ssh-keygen";
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const KEY_FIELDS = ["created_at", "fingerprint", "id", "key_type", "label", "public_key", "user_id"];
const BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END = "-----END OPENSSH PRIVATE KEY-----";

let h: ApiHarness;
let admin: string;
let adminId: string;
let dir: string;

interface Fixture {
  path: string;
  /** The `.pub` file exactly as ssh-keygen wrote it (with its trailing newline). */
  pub: string;
}
const fx: Record<string, Fixture> = {};
let certPub: string;

function keygen(name: string, args: string[]): Fixture {
  const path = join(dir, name);
  execFileSync(KEYGEN, ["-q", "-N", "", "-f", path, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  return { path, pub: readFileSync(`${path}.pub`, "utf8") };
}

/** The SHA256 fingerprint as `ssh-keygen -lf` prints it (second field). */
function sshFingerprint(path: string): string {
  const out = execFileSync(KEYGEN, ["-l", "-E", "sha256", "-f", path], { encoding: "utf8" });
  return out.split(" ")[1]!;
}

/** `<algorithm> <base64>`, without the comment. */
const blobOf = (line: string) => line.trim().split(/\s+/).slice(0, 2).join(" ");

/** Generated private keys and the responses that revealed them (the only places they may appear). */
const privateKeys: string[] = [];
const revealingResponses = new Set<string>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ccp-ssh-keys-"));
  fx.ed = keygen("ed", ["-t", "ed25519", "-C", "alice@laptop"]);
  fx.ed2 = keygen("ed2", ["-t", "ed25519", "-C", "second"]);
  fx.edNoComment = keygen("ed-nc", ["-t", "ed25519", "-C", ""]);
  fx.ecdsa256 = keygen("ecdsa256", ["-t", "ecdsa", "-b", "256", "-C", "ec256"]);
  fx.ecdsa384 = keygen("ecdsa384", ["-t", "ecdsa", "-b", "384", "-C", "ec384"]);
  fx.ecdsa521 = keygen("ecdsa521", ["-t", "ecdsa", "-b", "521", "-C", "ec521"]);
  fx.rsa2048 = keygen("rsa2048", ["-t", "rsa", "-b", "2048", "-C", "rsa2048"]);
  fx.rsa1024 = keygen("rsa1024", ["-t", "rsa", "-b", "1024", "-C", "rsa1024"]);
  fx.dsa = keygen("dsa", ["-t", "dsa", "-C", "dsa"]);
  fx.ca = keygen("ca", ["-t", "ed25519", "-C", "ca"]);
  fx.certified = keygen("certified", ["-t", "ed25519", "-C", "certified"]);
  execFileSync(KEYGEN, ["-q", "-s", fx.ca.path, "-I", "cert-id", "-n", "alice", `${fx.certified.path}.pub`], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  certPub = readFileSync(`${fx.certified.path}-cert.pub`, "utf8");

  h = await createApiHarness();
  admin = await h.adminToken();
  const [row] = await h.database.sql<{ id: string }[]>`select id from users where role = 'admin'`;
  adminId = row!.id;
});
afterAll(async () => {
  await h?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type EventRow = { type: string; level: string; actor_id: string | null; user_id: string | null; metadata: Record<string, unknown> };
async function keyEvents(userId: string, type?: string): Promise<EventRow[]> {
  const sql = h.database.sql;
  return sql<EventRow[]>`
    select type, level, actor_id, user_id, metadata from events
    where user_id = ${userId} and type like 'ssh_key.%' ${type ? sql`and type = ${type}` : sql``}
    order by created_at, id`;
}
async function keyRows(userId: string) {
  return h.database.sql<{ id: string; fingerprint: string; public_key: string; label: string }[]>`
    select id, fingerprint, public_key, label from ssh_keys where user_id = ${userId} order by created_at, id`;
}

/** The two ways to reach one owner's keys: as the admin on `{userID}`, or as the owner. */
type Variant = { name: string; base: (u: TestUser) => string; token: (u: TestUser) => string; actor: (u: TestUser) => string };
const variants: Variant[] = [
  { name: "admin", base: (u) => `/v1/admin/users/${u.id}/ssh-keys`, token: () => admin, actor: () => adminId },
  { name: "self-service", base: () => "/v1/user/ssh-keys", token: (u) => u.token, actor: (u) => u.id },
];

async function generate(u: TestUser, body: unknown = {}, v: Variant = variants[1]!) {
  const res = await h.request("POST", `${v.base(u)}/generate`, { token: v.token(u), body });
  if (res.status === 201) {
    privateKeys.push(res.body.private_key);
    revealingResponses.add(res.text);
  }
  return res;
}

describe.each(variants)("$name variant", (v) => {
  it("adds an ed25519 key: 201, the fingerprint ssh-keygen prints, label = comment", async () => {
    const u = await h.createUser();
    const res = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ed!.pub } });
    expect(res.status, res.text).toBe(201);
    // No host yet, so no sync task.
    expect(Object.keys(res.body)).toEqual(["key"]);
    const key = res.body.key;
    expect(Object.keys(key).sort()).toEqual(KEY_FIELDS);
    expect(key).toMatchObject({
      user_id: u.id,
      key_type: "ed25519",
      label: "alice@laptop",
      fingerprint: sshFingerprint(`${fx.ed!.path}.pub`),
      public_key: fx.ed!.pub.trim(),
    });
    expect(key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(key.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(key.created_at).toMatch(TS);

    const evs = await keyEvents(u.id);
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ type: "ssh_key.added", level: "info", actor_id: v.actor(u), user_id: u.id });
    expect(evs[0]!.metadata).toEqual({ key_id: key.id, fingerprint: key.fingerprint, key_type: "ed25519", label: "alice@laptop" });

    const list = await h.request("GET", v.base(u), { token: v.token(u) });
    expect(list.status, list.text).toBe(200);
    expect(list.body).toEqual({ keys: [key], total: 1, limit: 50, offset: 0 });
  });

  it.each([
    ["ecdsa256", "ecdsa"],
    ["ecdsa384", "ecdsa"],
    ["ecdsa521", "ecdsa"],
    ["rsa2048", "rsa"],
    ["edNoComment", "ed25519"],
  ])("accepts %s (key_type %s)", async (name, type) => {
    const u = await h.createUser();
    const f = fx[name]!;
    const res = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: f.pub } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.key.key_type).toBe(type);
    expect(res.body.key.fingerprint).toBe(sshFingerprint(`${f.path}.pub`));
    expect(res.body.key.public_key).toBe(f.pub.trim());
    expect(res.body.key.label).toBe(name === "edNoComment" ? "" : f.pub.trim().split(" ")[2]);
  });

  it("normalises whitespace around and inside the line; label overrides the comment, trimmed", async () => {
    const u = await h.createUser();
    const [alg, b64] = fx.ed!.pub.trim().split(" ");
    const res = await h.request("POST", v.base(u), {
      token: v.token(u),
      body: { public_key: `  ${alg}\t ${b64}   my  laptop \r\n`, label: "  work laptop  " },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.key.public_key).toBe(`${alg} ${b64} my  laptop`);
    expect(res.body.key.label).toBe("work laptop");
    const empty = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ed2!.pub, label: "" } });
    expect(empty.status, empty.text).toBe(201);
    expect(empty.body.key.label).toBe("");
  });

  it.each([
    ["RSA 1024", () => fx.rsa1024!.pub],
    ["DSA", () => fx.dsa!.pub],
    ["a certificate", () => certPub],
    ["two keys on two lines", () => fx.ed!.pub + fx.ed2!.pub],
    ["two keys on one line", () => `${fx.ed!.pub.trim()} ${fx.ed2!.pub.trim()}`],
    ["garbage", () => "not a key at all"],
    ["the algorithm alone", () => "ssh-ed25519"],
    ["base64 that is not a key", () => "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBad"],
    ["a blob of another algorithm", () => `ssh-rsa ${fx.ed!.pub.split(" ")[1]}`],
    ["options (no-pty)", () => `no-pty ${fx.ed!.pub}`],
    ["options (command)", () => `command="/bin/sh -c 'id'" ${fx.ed!.pub}`],
    ["options (from)", () => `from="10.0.0.1",no-agent-forwarding ${fx.ed!.pub}`],
    ["a security key", () => `sk-ssh-ed25519@openssh.com ${fx.ed!.pub.split(" ")[1]} yubikey`],
    ["a private key", () => readFileSync(fx.ed!.path, "utf8")],
    ["a control character in the comment", () => `${fx.ed!.pub.trim()}\u0007bell`],
    ["a comment of 256 characters", () => `${blobOf(fx.ed!.pub)} ${"c".repeat(256)}`],
    ["an empty string", () => ""],
    ["whitespace", () => "  \n "],
    ["more than 16 KiB", () => `${fx.ed!.pub.trim()} ${"x".repeat(16 * 1024)}`],
    ["a number", () => 42],
    ["null", () => null],
    ["an object", () => ({ key: fx.ed!.pub })],
  ])("rejects %s with a public_key detail", async (_name, make) => {
    const u = await h.createUser();
    const public_key = make();
    const res = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key } });
    expect(res.status, res.text).toBe(400);
    expect(res.body.code).toBe("invalid_request");
    expect(res.body.details).toEqual([{ field: "public_key", message: expect.any(String) }]);
    expect(await keyRows(u.id)).toHaveLength(0);
    expect(await keyEvents(u.id)).toHaveLength(0);
  });

  it("requires public_key and rejects unknown fields", async () => {
    const u = await h.createUser();
    const missing = await h.request("POST", v.base(u), { token: v.token(u), body: { label: "x" } });
    expect(missing.status, missing.text).toBe(400);
    expect(missing.body.details).toEqual([{ field: "public_key", message: expect.any(String) }]);
    const extra = await h.request("POST", v.base(u), {
      token: v.token(u),
      body: { public_key: fx.ed!.pub, user_id: randomUUID(), fingerprint: "SHA256:x" },
    });
    expect(extra.status, extra.text).toBe(400);
    expect(extra.body.details).toEqual(
      expect.arrayContaining([
        { field: "user_id", message: "unknown field" },
        { field: "fingerprint", message: "unknown field" },
      ]),
    );
    const empty = await h.request("POST", v.base(u), { token: v.token(u), rawBody: "" });
    expect(empty.status, empty.text).toBe(400);
    expect(empty.body.details[0].field).toBe("body");
    expect(await keyRows(u.id)).toHaveLength(0);
  });

  it.each([
    ["101 characters", "l".repeat(101)],
    ["a newline", "lap\ntop"],
    ["a NUL", "lap\u0000top"],
    ["DEL", "lap\u007ftop"],
    ["a C1 control", "lap\u009btop"],
    ["a number", 7],
  ])("rejects a label with %s", async (_name, label) => {
    const u = await h.createUser();
    const res = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ed!.pub, label } });
    expect(res.status, res.text).toBe(400);
    expect(res.body.details).toEqual([{ field: "label", message: expect.any(String) }]);
    const gen = await h.request("POST", `${v.base(u)}/generate`, { token: v.token(u), body: { label } });
    expect(gen.status, gen.text).toBe(400);
    expect(gen.body.details).toEqual([{ field: "label", message: expect.any(String) }]);
    expect(await keyRows(u.id)).toHaveLength(0);
  });

  it("accepts a label of exactly 100 characters (101 with surrounding spaces trimmed)", async () => {
    const u = await h.createUser();
    const res = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ed!.pub, label: ` ${"l".repeat(100)} ` } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.key.label).toBe("l".repeat(100));
  });

  it("refuses the same key twice for one user (409 key_exists), allows it for another user", async () => {
    const a = await h.createUser();
    const b = await h.createUser();
    const first = await h.request("POST", v.base(a), { token: v.token(a), body: { public_key: fx.ed!.pub } });
    expect(first.status, first.text).toBe(201);
    // Same blob, different comment and label: still the same fingerprint.
    const again = await h.request("POST", v.base(a), {
      token: v.token(a),
      body: { public_key: `${blobOf(fx.ed!.pub)} other-comment`, label: "other" },
    });
    expect(again.status, again.text).toBe(409);
    expect(again.body).toEqual({ error: expect.any(String), code: "key_exists" });
    expect(await keyRows(a.id)).toHaveLength(1);
    expect(await keyEvents(a.id)).toHaveLength(1);

    const other = await h.request("POST", v.base(b), { token: v.token(b), body: { public_key: fx.ed!.pub } });
    expect(other.status, other.text).toBe(201);
    expect(other.body.key.fingerprint).toBe(first.body.key.fingerprint);
    expect(other.body.key.id).not.toBe(first.body.key.id);
    expect(other.body.key.user_id).toBe(b.id);
  });

  it("answers concurrent adds of one key with one 201 and 409 key_exists", async () => {
    const u = await h.createUser();
    const results = await Promise.all(
      [0, 1, 2].map(() => h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ecdsa384!.pub } })),
    );
    expect(results.map((r) => r.status).sort(), results.map((r) => r.text).join("\n")).toEqual([201, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) expect(r.body.code).toBe("key_exists");
    expect(await keyRows(u.id)).toHaveLength(1);
    expect(await keyEvents(u.id)).toHaveLength(1);
  });

  it("generates an ed25519 pair: private key once, public part stored and matching", async () => {
    const u = await h.createUser();
    const res = await generate(u, {}, v);
    expect(res.status, res.text).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(["key", "private_key"]);
    const { key, private_key } = res.body as { key: Record<string, string>; private_key: string };
    expect(Object.keys(key).sort()).toEqual(KEY_FIELDS);
    expect(private_key.startsWith(`${BEGIN}\n`)).toBe(true);
    expect(private_key.endsWith(`\n${END}\n`)).toBe(true);
    expect(key).toMatchObject({ user_id: u.id, key_type: "ed25519", label: "generated" });
    // The comment names the owner, also when the admin generates it.
    expect(key.public_key).toMatch(new RegExp(`^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/]+ ${u.username}@cloud-cli-proxy$`));

    // OpenSSH accepts the private key as an unencrypted key and derives the stored public key.
    const file = join(dir, `gen-${randomUUID()}`);
    writeFileSync(file, private_key, { mode: 0o600 });
    chmodSync(file, 0o600);
    const derived = execFileSync(KEYGEN, ["-y", "-P", "", "-f", file], { encoding: "utf8" });
    expect(blobOf(derived)).toBe(blobOf(key.public_key!));
    expect(sshFingerprint(file)).toBe(key.fingerprint);
    rmSync(file);

    const [row] = await keyRows(u.id);
    expect(row).toMatchObject({ id: key.id, fingerprint: key.fingerprint, public_key: key.public_key, label: "generated" });

    const evs = await keyEvents(u.id);
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ type: "ssh_key.generated", level: "info", actor_id: v.actor(u), user_id: u.id });
    expect(evs[0]!.metadata).toEqual({ key_id: key.id, fingerprint: key.fingerprint, key_type: "ed25519", label: "generated" });

    // No later answer contains it.
    const list = await h.request("GET", v.base(u), { token: v.token(u) });
    expect(list.status, list.text).toBe(200);
    expect(list.body.keys).toEqual([key]);
    expect(list.text).not.toContain("PRIVATE KEY");
    const user = await h.request("GET", `/v1/admin/users/${u.id}`, { token: admin });
    expect(user.text).not.toContain("PRIVATE KEY");
  });

  it.each([
    ["no body at all", { body: undefined }, "generated"],
    ["an empty body", { rawBody: "" }, "generated"],
    ["{}", { body: {} }, "generated"],
    ['{"label":"x"}', { body: { label: "x" } }, "x"],
    ["a label with spaces around it", { body: { label: "  ci runner  " } }, "ci runner"],
  ])("generates with %s", async (_name, opts, label) => {
    const u = await h.createUser();
    const res = await h.request("POST", `${v.base(u)}/generate`, { token: v.token(u), ...opts });
    expect(res.status, res.text).toBe(201);
    privateKeys.push(res.body.private_key);
    revealingResponses.add(res.text);
    expect(res.body.key.label).toBe(label);
  });

  it("rejects generate bodies with unknown fields or that are not objects", async () => {
    const u = await h.createUser();
    for (const [opts, field] of [
      [{ body: { public_key: fx.ed!.pub } }, "public_key"],
      [{ body: { key_type: "rsa" } }, "key_type"],
      [{ rawBody: "[]" }, "body"],
      [{ rawBody: "nope" }, "body"],
    ] as const) {
      const res = await h.request("POST", `${v.base(u)}/generate`, { token: v.token(u), ...opts });
      expect(res.status, res.text).toBe(400);
      expect(res.body.details[0].field).toBe(field);
    }
    expect(await keyRows(u.id)).toHaveLength(0);
  });

  it("deletes a key: 204 empty, event, gone from the list, second delete 404", async () => {
    const u = await h.createUser();
    const keep = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ed2!.pub } });
    const add = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ed!.pub, label: "to-delete" } });
    expect(add.status, add.text).toBe(201);
    const key = add.body.key;
    const del = await h.request("DELETE", `${v.base(u)}/${key.id}`, { token: v.token(u) });
    expect(del.status, del.text).toBe(204);
    expect(del.text).toBe("");
    expect((await keyRows(u.id)).map((k) => k.id)).toEqual([keep.body.key.id]);
    const evs = await keyEvents(u.id, "ssh_key.deleted");
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ level: "info", actor_id: v.actor(u), user_id: u.id });
    expect(evs[0]!.metadata).toEqual({ key_id: key.id, fingerprint: key.fingerprint, key_type: "ed25519", label: "to-delete" });
    const again = await h.request("DELETE", `${v.base(u)}/${key.id}`, { token: v.token(u) });
    expect(again.status, again.text).toBe(404);
    expect(again.body).toEqual({ error: expect.any(String), code: "key_not_found" });
    // The fingerprint is free again for this user.
    const readd = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ed!.pub } });
    expect(readd.status, readd.text).toBe(201);
  });

  it.each(["not-a-uuid", "00000000-0000-4000-8000-000000000000", "1%27%20or%20%271%27=%271"])(
    "answers 404 key_not_found for key id %s",
    async (keyId) => {
      const u = await h.createUser();
      await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ed!.pub } });
      const res = await h.request("DELETE", `${v.base(u)}/${keyId}`, { token: v.token(u) });
      expect(res.status, res.text).toBe(404);
      expect(res.body.code).toBe("key_not_found");
      expect(await keyRows(u.id)).toHaveLength(1);
    },
  );

  it("lists newest first and pages with limit and offset", async () => {
    const u = await h.createUser();
    const ids: string[] = [];
    for (const name of ["ed", "ed2", "ecdsa256", "rsa2048"]) {
      const r = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx[name]!.pub } });
      expect(r.status, r.text).toBe(201);
      ids.push(r.body.key.id);
    }
    const all = await h.request("GET", v.base(u), { token: v.token(u) });
    expect(all.status, all.text).toBe(200);
    expect(Object.keys(all.body).sort()).toEqual(["keys", "limit", "offset", "total"]);
    expect(all.body).toMatchObject({ total: 4, limit: 50, offset: 0 });
    expect((all.body.keys as { id: string }[]).map((k) => k.id)).toEqual([...ids].reverse());
    for (const k of all.body.keys) {
      expect(Object.keys(k).sort()).toEqual(KEY_FIELDS);
      expect(k.created_at).toMatch(TS);
    }
    const page = await h.request("GET", `${v.base(u)}?limit=2&offset=1`, { token: v.token(u) });
    expect(page.body).toMatchObject({ total: 4, limit: 2, offset: 1 });
    expect((page.body.keys as { id: string }[]).map((k) => k.id)).toEqual([ids[2], ids[1]]);
    const clamped = await h.request("GET", `${v.base(u)}?limit=500`, { token: v.token(u) });
    expect(clamped.status, clamped.text).toBe(200);
    expect(clamped.body.limit).toBe(200);
    for (const [qs, field] of [
      ["limit=0", "query.limit"],
      ["limit=abc", "query.limit"],
      ["limit=-1", "query.limit"],
      ["offset=-1", "query.offset"],
    ]) {
      const bad = await h.request("GET", `${v.base(u)}?${qs}`, { token: v.token(u) });
      expect(bad.status, `${qs}: ${bad.text}`).toBe(400);
      expect(bad.body.details).toEqual([{ field, message: expect.any(String) }]);
    }
  });

  it("stops at 50 keys with 409 key_limit_reached (add and generate)", async () => {
    const u = await h.createUser();
    // 49 rows straight into the table, then the API adds the 50th.
    await h.database.sql`
      insert into ssh_keys (user_id, label, key_type, fingerprint, public_key)
      select ${u.id}, 'bulk', 'ed25519', 'SHA256:bulk' || g, 'ssh-ed25519 AAAAbulk' || g from generate_series(1, 49) g`;
    const fiftieth = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ed!.pub } });
    expect(fiftieth.status, fiftieth.text).toBe(201);
    const over = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ed2!.pub } });
    expect(over.status, over.text).toBe(409);
    expect(over.body).toEqual({ error: expect.any(String), code: "key_limit_reached" });
    const gen = await h.request("POST", `${v.base(u)}/generate`, { token: v.token(u) });
    expect(gen.status, gen.text).toBe(409);
    expect(gen.body.code).toBe("key_limit_reached");
    expect(gen.text).not.toContain("PRIVATE KEY");
    expect(await keyRows(u.id)).toHaveLength(50);
    const list = await h.request("GET", `${v.base(u)}?limit=20&offset=40`, { token: v.token(u) });
    expect(list.body).toMatchObject({ total: 50, limit: 20, offset: 40 });
    expect(list.body.keys).toHaveLength(10);
    // A duplicate at the limit: either answer is a 409, and nothing is added.
    const dup = await h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx.ed!.pub } });
    expect(dup.status, dup.text).toBe(409);

    const del = await h.request("DELETE", `${v.base(u)}/${fiftieth.body.key.id}`, { token: v.token(u) });
    expect(del.status, del.text).toBe(204);
    const room = await generate(u, {}, v);
    expect(room.status, room.text).toBe(201);
    expect(await keyRows(u.id)).toHaveLength(50);
  });

  it("holds the limit under concurrent adds", async () => {
    const u = await h.createUser();
    await h.database.sql`
      insert into ssh_keys (user_id, label, key_type, fingerprint, public_key)
      select ${u.id}, 'bulk', 'ed25519', 'SHA256:bulk' || g, 'ssh-ed25519 AAAAbulk' || g from generate_series(1, 48) g`;
    const results = await Promise.all(
      ["ed", "ed2", "ecdsa256", "ecdsa384", "rsa2048"].map((name) =>
        h.request("POST", v.base(u), { token: v.token(u), body: { public_key: fx[name]!.pub } }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses, results.map((r) => r.text).join("\n")).toEqual([201, 201, 409, 409, 409]);
    expect(await keyRows(u.id)).toHaveLength(50);
  });
});

describe("default label from a long comment", () => {
  it.each([
    ["ASCII", `${"c".repeat(150)}`, "c".repeat(100)],
    // Labels count code points: an emoji is one character and is never cut in half.
    ["an emoji at the limit", `${"a".repeat(99)}😀${"b".repeat(50)}`, `${"a".repeat(99)}😀`],
    ["an emoji inside the limit", `${"a".repeat(98)}😀${"b".repeat(50)}`, `${"a".repeat(98)}😀b`],
  ])("truncates the comment (%s) to 100 without splitting a character", async (_name, comment, label) => {
    const u = await h.createUser();
    const res = await h.request("POST", "/v1/user/ssh-keys", { token: u.token, body: { public_key: `${blobOf(fx.ed!.pub)} ${comment}` } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.key.public_key).toBe(`${blobOf(fx.ed!.pub)} ${comment}`);
    expect(res.body.key.label).toBe(label);
    const [row] = await keyRows(u.id);
    expect(row!.label).toBe(label);
    const [ev] = await keyEvents(u.id, "ssh_key.added");
    expect(ev!.metadata.label).toBe(label);
  });
});

describe("tenant isolation", () => {
  let a: TestUser;
  let b: TestUser;
  let bKey: { id: string; fingerprint: string };
  let aKey: { id: string };

  beforeAll(async () => {
    a = await h.createUser();
    b = await h.createUser();
    const rb = await h.request("POST", "/v1/user/ssh-keys", { token: b.token, body: { public_key: fx.ed!.pub, label: "b-key" } });
    if (rb.status !== 201) throw new Error(rb.text);
    bKey = rb.body.key;
    // A registers the very same public key: same fingerprint, different row.
    const ra = await h.request("POST", "/v1/user/ssh-keys", { token: a.token, body: { public_key: fx.ed!.pub } });
    if (ra.status !== 201) throw new Error(ra.text);
    aKey = ra.body.key;
  });

  const bStillHasKey = async () => {
    expect((await keyRows(b.id)).map((k) => k.id)).toEqual([bKey.id]);
    const list = await h.request("GET", "/v1/user/ssh-keys", { token: b.token });
    expect((list.body.keys as { id: string }[]).map((k) => k.id)).toEqual([bKey.id]);
  };

  it("DELETE /v1/user/ssh-keys/{B's key} with A's token → 404 key_not_found; B keeps it", async () => {
    const res = await h.request("DELETE", `/v1/user/ssh-keys/${bKey.id}`, { token: a.token });
    expect(res.status, res.text).toBe(404);
    expect(res.body).toEqual({ error: expect.any(String), code: "key_not_found" });
    await bStillHasKey();
    // A's own copy of the same key is untouched too.
    expect((await keyRows(a.id)).map((k) => k.id)).toEqual([aKey.id]);
    expect(await keyEvents(b.id, "ssh_key.deleted")).toHaveLength(0);
  });

  it("DELETE /v1/admin/users/{A}/ssh-keys/{B's key} → 404 key_not_found; B keeps it", async () => {
    const res = await h.request("DELETE", `/v1/admin/users/${a.id}/ssh-keys/${bKey.id}`, { token: admin });
    expect(res.status, res.text).toBe(404);
    expect(res.body.code).toBe("key_not_found");
    await bStillHasKey();
    expect(await keyRows(a.id)).toHaveLength(1);
  });

  it("A's lists never show B's keys", async () => {
    for (const [path, token] of [
      ["/v1/user/ssh-keys", a.token],
      [`/v1/admin/users/${a.id}/ssh-keys`, admin],
      ["/v1/user/ssh-keys?limit=200", a.token],
    ] as const) {
      const res = await h.request("GET", path, { token });
      expect(res.status, res.text).toBe(200);
      expect(res.body.total).toBe(1);
      expect((res.body.keys as { id: string; user_id: string }[]).map((k) => [k.id, k.user_id])).toEqual([[aKey.id, a.id]]);
      expect(res.text).not.toContain(bKey.id);
      expect(res.text).not.toContain(b.id);
    }
  });

  it("a user token on any /v1/admin/users/{id}/ssh-keys route → 403, for any id", async () => {
    for (const id of [a.id, b.id, randomUUID(), "not-a-uuid"]) {
      for (const [method, suffix, body] of [
        ["GET", "", undefined],
        ["POST", "", { public_key: fx.ed2!.pub }],
        ["POST", "/generate", {}],
        ["DELETE", `/${bKey.id}`, undefined],
        ["DELETE", `/${aKey.id}`, undefined],
      ] as const) {
        const res = await h.request(method, `/v1/admin/users/${id}/ssh-keys${suffix}`, { token: a.token, body });
        expect(res.status, `${method} ${id}${suffix}: ${res.text}`).toBe(403);
        expect(res.body).toEqual({ error: expect.any(String), code: "forbidden" });
        expect(res.text).not.toContain("PRIVATE KEY");
      }
    }
    await bStillHasKey();
    expect(await keyRows(a.id)).toHaveLength(1);
  });

  it("no token → 401 on every key route of both variants", async () => {
    for (const [method, path, body] of [
      ["GET", "/v1/user/ssh-keys", undefined],
      ["POST", "/v1/user/ssh-keys", { public_key: fx.ed2!.pub }],
      ["POST", "/v1/user/ssh-keys/generate", {}],
      ["DELETE", `/v1/user/ssh-keys/${bKey.id}`, undefined],
      ["GET", `/v1/admin/users/${b.id}/ssh-keys`, undefined],
      ["POST", `/v1/admin/users/${b.id}/ssh-keys`, { public_key: fx.ed2!.pub }],
      ["POST", `/v1/admin/users/${b.id}/ssh-keys/generate`, {}],
      ["DELETE", `/v1/admin/users/${b.id}/ssh-keys/${bKey.id}`, undefined],
    ] as const) {
      const headerSets: Record<string, string>[] = [
        {},
        { authorization: "Bearer garbage" },
        { authorization: `Bearer ${b.token}`.slice(0, -2) },
      ];
      for (const headers of headerSets) {
        const res = await h.request(method, path, { body, headers });
        expect(res.status, `${method} ${path}: ${res.text}`).toBe(401);
        expect(res.body.code).toBe("unauthorized");
        expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      }
    }
    await bStillHasKey();
  });

  it("admin variant on an unknown, malformed or deleted user → 404 user_not_found", async () => {
    const gone = await h.createUser();
    const del = await h.request("DELETE", `/v1/admin/users/${gone.id}`, { token: admin });
    expect(del.status, del.text).toBe(204);
    for (const id of [randomUUID(), "not-a-uuid", gone.id]) {
      for (const [method, suffix, body] of [
        ["GET", "", undefined],
        ["POST", "", { public_key: fx.ed2!.pub }],
        ["POST", "/generate", undefined],
        ["DELETE", `/${bKey.id}`, undefined],
        ["DELETE", "/not-a-uuid", undefined],
      ] as const) {
        const res = await h.request(method, `/v1/admin/users/${id}/ssh-keys${suffix}`, { token: admin, body });
        expect(res.status, `${method} ${id}${suffix}: ${res.text}`).toBe(404);
        expect(res.body.code).toBe("user_not_found");
        expect(res.text).not.toContain("PRIVATE KEY");
      }
    }
    await bStillHasKey();
  });

  it("a disabled user's token no longer reaches the self-service routes", async () => {
    const c = await h.createUser();
    const r = await h.request("PATCH", `/v1/admin/users/${c.id}`, { token: admin, body: { status: "disabled" } });
    expect(r.status, r.text).toBe(200);
    const res = await h.request("POST", "/v1/user/ssh-keys/generate", { token: c.token });
    expect(res.status, res.text).toBe(401);
    expect(await keyRows(c.id)).toHaveLength(0);
  });

  it("the admin may manage keys for the admin account, both ways", async () => {
    const self = await h.request("POST", "/v1/user/ssh-keys", { token: admin, body: { public_key: fx.ecdsa256!.pub } });
    expect(self.status, self.text).toBe(201);
    expect(self.body.key.user_id).toBe(adminId);
    const list = await h.request("GET", `/v1/admin/users/${adminId}/ssh-keys`, { token: admin });
    expect((list.body.keys as { id: string }[]).map((k) => k.id)).toContain(self.body.key.id);
    const del = await h.request("DELETE", `/v1/admin/users/${adminId}/ssh-keys/${self.body.key.id}`, { token: admin });
    expect(del.status, del.text).toBe(204);
  });
});

describe("secrets", () => {
  it("a private key appears only in the generate response that revealed it", async () => {
    // Exercise every read path once more after the generations above.
    const u = await h.createUser();
    const gen = await generate(u, { label: "last" });
    expect(gen.status, gen.text).toBe(201);
    await h.request("GET", "/v1/user/ssh-keys", { token: u.token });
    await h.request("GET", `/v1/admin/users/${u.id}/ssh-keys`, { token: admin });
    await h.request("GET", `/v1/admin/users/${u.id}`, { token: admin });

    expect(privateKeys.length).toBeGreaterThanOrEqual(10);
    const carrying = h.responses.filter((r) => r.includes("PRIVATE KEY"));
    expect(carrying.filter((r) => !revealingResponses.has(r))).toEqual([]);
    // Each key once, by its body too (not just by its armour).
    for (const pk of privateKeys) {
      // Line 1 is the fixed `openssh-key-v1` header; the later lines carry key material.
      const lines = pk.split("\n").slice(2, -2).filter((l) => l.length >= 40);
      expect(lines.length).toBeGreaterThanOrEqual(3);
      for (const line of lines) {
        expect(h.responses.filter((r) => r.includes(line))).toHaveLength(1);
        expect(h.logs.some((l) => l.includes(line))).toBe(false);
      }
    }
    expect(h.logs.filter((l) => l.includes("PRIVATE KEY"))).toEqual([]);
    const events = await h.database.sql`select message, metadata from events`;
    expect(JSON.stringify(events)).not.toContain("PRIVATE KEY");
    const keys = await h.database.sql`select * from ssh_keys`;
    expect(JSON.stringify(keys)).not.toContain("PRIVATE KEY");
    for (const pk of privateKeys) expect(JSON.stringify(keys)).not.toContain(pk.split("\n")[4]!);
  });

  it("every key timestamp is RFC 3339 UTC with milliseconds and nothing answered 500", () => {
    const stamps: string[] = [];
    for (const text of h.responses) {
      const m = text.match(/"[a-z_]+_at":"[^"]*"/g) ?? [];
      for (const pair of m) stamps.push(pair.split('":"')[1]!.slice(0, -1));
    }
    expect(stamps.length).toBeGreaterThan(50);
    expect(stamps.filter((s) => !TS.test(s))).toEqual([]);
    expect(h.responses.filter((r) => r.includes("internal_error"))).toEqual([]);
  });
});
