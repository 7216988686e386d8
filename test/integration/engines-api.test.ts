import { execFileSync } from "node:child_process";
import { createHash, randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { secretAt } from "../../shared/crypto/secrets.js";
import { type ApiHarness, type TestResponse, type TestUser, createApiHarness, findSecrets } from "../../shared/test/api-harness.js";
import { insertHostRow, insertUserRow } from "../../shared/test/rows.js";

/**
 * Engines admin API (docs/api.md#engines). No worker runs here: heartbeats are written straight to
 * the rows, and hosts created through the API stay pending on the engine placement chose.
 * TLS material is minted with openssl into a temporary directory; the client key must never leave
 * the process except encrypted in its column.
 */
let h: ApiHarness;
let admin: string;
let user: TestUser;
let dir: string;
let pki: { ca: string; cert: string; key: string; otherKey: string; otherCert: string };
/** Every PEM private key body handed to the API: none may reach a response, a log line or an event. */
const secrets: string[] = [];

const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });

function mintPki() {
  const ec = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"];
  openssl(...ec, "ca.key");
  openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=engines-test-ca", "-days", "2", "-out", "ca.pem");
  openssl(...ec, "client.key");
  openssl("req", "-new", "-key", "client.key", "-subj", "/CN=engines-test-worker", "-out", "client.csr");
  openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-out", "client.pem");
  openssl(...ec, "other.key");
  openssl("req", "-x509", "-new", "-key", "other.key", "-subj", "/CN=engines-test-other", "-days", "2", "-out", "other.pem");
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  return { ca: read("ca.pem"), cert: read("client.pem"), key: read("client.key"), otherKey: read("other.key"), otherCert: read("other.pem") };
}

/** The base64 body of a PEM: what a leak would contain even if re-wrapped. */
const pemBody = (pem: string) => pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
const sha256 = (pem: string) => createHash("sha256").update(new X509Certificate(pem).raw).digest("hex");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ccp-engines-"));
  pki = mintPki();
  for (const k of [pki.key, pki.otherKey]) {
    secrets.push(pemBody(k));
    // Each line of the key too: a log that wraps or truncates must not carry a piece of it.
    for (const line of k.split("\n")) if (line.length > 20 && !line.startsWith("-----")) secrets.push(line);
  }
  h = await createApiHarness();
  admin = await h.adminToken();
  user = await h.createUser();
});
afterAll(async () => {
  await h?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sql = () => h.database.sql;
const name = (stem = "e") => `${stem}-${randomBytes(4).toString("hex")}`;
const api = (method: string, path: string, body?: unknown, token = admin) => h.request(method, path, { token, ...(body !== undefined ? { body } : {}) });
const tls = () => ({ ca_pem: pki.ca, cert_pem: pki.cert, key_pem: pki.key });

function expectError(res: TestResponse, status: number, code: string, what = "") {
  expect(res.status, `${what} ${res.text}`).toBe(status);
  expect(res.body, `${what} not the error envelope: ${res.text}`).toMatchObject({ error: expect.any(String), code });
}

async function counts() {
  const [e] = await sql()<{ n: string }[]>`select count(*) as n from engines`;
  const [ev] = await sql()<{ n: string }[]>`select count(*) as n from events where type like 'engine.%'`;
  return { engines: Number(e!.n), events: Number(ev!.n) };
}

async function addUnix(over: Record<string, unknown> = {}) {
  const id = name();
  const res = await api("POST", "/v1/admin/engines", { id, endpoint: `unix:///run/${id}.sock`, ...over });
  expect(res.status, res.text).toBe(201);
  return id;
}

describe("add, read, update, remove", () => {
  it("adds a unix engine and renders it with capacity, usage, counts and health", async () => {
    const id = name("unix");
    const res = await api("POST", "/v1/admin/engines", {
      id,
      endpoint: "unix:///var/run/other-docker.sock",
      memory_mb: 65536,
      cpus: 16.5,
      max_hosts: 12,
      labels: { zone: "a", disk: "ssd" },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.engine).toMatchObject({
      id,
      endpoint: "unix:///var/run/other-docker.sock",
      state: "active",
      health: "no_worker",
      tls: null,
      capacity: { memory_mb: 65536, cpus: 16.5, max_hosts: 12 },
      usage: { memory_mb: 0, cpus: 0 },
      counts: { hosts: 0, running_hosts: 0, pool_members: 0 },
      labels: { zone: "a", disk: "ssd" },
      last_seen_at: null,
      last_heartbeat_at: null,
    });
    const got = await api("GET", `/v1/admin/engines/${id}`);
    expect(got.status, got.text).toBe(200);
    expect(got.body.engine).toEqual(res.body.engine);
    const list = await api("GET", "/v1/admin/engines");
    expect(list.status, list.text).toBe(200);
    expect(list.body.engines.map((e: { id: string }) => e.id)).toEqual(expect.arrayContaining(["default", id]));
    const [ev] = await sql()<{ metadata: Record<string, unknown> }[]>`select metadata from events where type = 'engine.added' and metadata->>'engine_id' = ${id}`;
    expect(ev?.metadata).toMatchObject({ engine_id: id, tls: false, max_hosts: 12 });
    expectError(await api("POST", "/v1/admin/engines", { id, endpoint: "unix:///var/run/x.sock" }), 409, "engine_exists");
  });

  it("counts the hosts on an engine and sums what they use", async () => {
    const id = await addUnix({ memory_mb: 100000 });
    for (const status of ["running", "running", "stopped"] as const) {
      const host = await insertHostRow(sql(), { status });
      await sql()`update hosts set engine_id = ${id}, memory_limit_mb = 2048, cpu_limit = 1.5 where id = ${host.id}`;
    }
    const got = await api("GET", `/v1/admin/engines/${id}`);
    expect(got.body.engine.counts, got.text).toEqual({ hosts: 3, running_hosts: 2, pool_members: 0 });
    expect(got.body.engine.usage).toEqual({ memory_mb: 6144, cpus: 4.5 });
  });

  it("derives health from the heartbeat columns", async () => {
    const id = await addUnix();
    const health = async () => (await api("GET", `/v1/admin/engines/${id}`)).body.engine.health;
    expect(await health()).toBe("no_worker");
    await sql()`update engines set last_heartbeat_at = now(), last_seen_at = now() - interval '10 minutes' where id = ${id}`;
    expect(await health()).toBe("docker_down");
    await sql()`update engines set last_seen_at = now() where id = ${id}`;
    expect(await health()).toBe("ok");
    await sql()`update engines set last_heartbeat_at = now() - interval '10 minutes', last_seen_at = now() - interval '10 minutes' where id = ${id}`;
    expect(await health()).toBe("no_worker");
  });

  it("updates labels and capacity; a request that changes nothing writes nothing", async () => {
    const id = await addUnix({ labels: { zone: "a" } });
    const res = await api("PATCH", `/v1/admin/engines/${id}`, { labels: { zone: "b", gpu: "yes" }, memory_mb: 4096, max_hosts: null, cpus: 2 });
    expect(res.status, res.text).toBe(200);
    expect(res.body.engine).toMatchObject({ labels: { zone: "b", gpu: "yes" }, capacity: { memory_mb: 4096, cpus: 2, max_hosts: null } });
    const [ev] = await sql()<{ metadata: { changed_fields: string[] } }[]>`
      select metadata from events where type = 'engine.updated' and metadata->>'engine_id' = ${id}`;
    expect(ev!.metadata.changed_fields.sort()).toEqual(["cpus", "labels", "memory_mb"]);
    const before = await counts();
    const same = await api("PATCH", `/v1/admin/engines/${id}`, { labels: { gpu: "yes", zone: "b" }, memory_mb: 4096 });
    expect(same.status, same.text).toBe(200);
    expect(await counts()).toEqual(before);
    expectError(await api("PATCH", `/v1/admin/engines/${id}`, { state: "cordoned" }), 400, "invalid_request", "unknown field");
    expectError(await api("PATCH", "/v1/admin/engines/nope-nope", { labels: {} }), 404, "engine_not_found");
  });

  it("cordons, uncordons and drains, one event per change", async () => {
    const id = await addUnix();
    for (const [verb, state, type] of [
      ["cordon", "cordoned", "engine.cordoned"],
      ["cordon", "cordoned", null],
      ["uncordon", "active", "engine.uncordoned"],
      ["drain", "draining", "engine.draining"],
      ["uncordon", "active", "engine.uncordoned"],
    ] as const) {
      const before = await counts();
      const res = await api("POST", `/v1/admin/engines/${id}/${verb}`);
      expect(res.status, res.text).toBe(200);
      expect(res.body.engine.state).toBe(state);
      expect((await counts()).events - before.events, `${verb} → ${state}`).toBe(type ? 1 : 0);
      if (type) {
        const [ev] = await sql()<{ type: string }[]>`select type from events where metadata->>'engine_id' = ${id} order by created_at desc, id desc limit 1`;
        expect(ev!.type).toBe(type);
      }
    }
    expectError(await api("POST", "/v1/admin/engines/missing-engine/drain"), 404, "engine_not_found");
  });

  it("removes an unused engine; refuses one with a host or a pool member, and the default", async () => {
    const id = await addUnix();
    const host = await insertHostRow(sql());
    await sql()`update hosts set engine_id = ${id} where id = ${host.id}`;
    expectError(await api("DELETE", `/v1/admin/engines/${id}`), 409, "engine_in_use");
    await sql()`delete from hosts where id = ${host.id}`;
    await sql()`
      insert into host_pool (id, engine_id, short_id, memory_limit_mb, cpu_limit, pids_limit, timezone, home_disk_mb,
                             host_key_public, host_key_private_enc, internal_key_public, internal_key_private_enc)
      values (gen_random_uuid(), ${id}, ${randomBytes(3).toString("hex")}, 4096, 2, 512, 'UTC', 1024, 'k', 'v1:x', 'k', 'v1:x')`;
    expectError(await api("DELETE", `/v1/admin/engines/${id}`), 409, "engine_in_use", "pool member");
    await sql()`delete from host_pool where engine_id = ${id}`;
    const del = await api("DELETE", `/v1/admin/engines/${id}`);
    expect(del.status, del.text).toBe(204);
    expectError(await api("GET", `/v1/admin/engines/${id}`), 404, "engine_not_found");
    expectError(await api("DELETE", `/v1/admin/engines/${id}`), 404, "engine_not_found");
    expectError(await api("DELETE", "/v1/admin/engines/default"), 409, "engine_protected");
    expectError(await api("GET", "/v1/admin/engines/NOT_AN_ID"), 404, "engine_not_found");
    const [ev] = await sql()<{ n: string }[]>`select count(*) as n from events where type = 'engine.removed' and metadata->>'engine_id' = ${id}`;
    expect(Number(ev!.n)).toBe(1);
  });
});

describe("validation: 400 in the envelope, nothing written", () => {
  const cases: [string, () => Record<string, unknown>, string][] = [
    ["uppercase id", () => ({ id: "Bad", endpoint: "unix:///var/run/docker.sock" }), "id"],
    ["id starting with -", () => ({ id: "-x", endpoint: "unix:///var/run/docker.sock" }), "id"],
    ["id of 64 characters", () => ({ id: "a".repeat(64), endpoint: "unix:///var/run/docker.sock" }), "id"],
    ["http endpoint", () => ({ id: name(), endpoint: "http://10.0.0.5:2376" }), "endpoint"],
    ["relative unix path", () => ({ id: name(), endpoint: "unix://var/run/docker.sock" }), "endpoint"],
    ["tcp without a port", () => ({ id: name(), endpoint: "tcp://10.0.0.5" }), "endpoint"],
    ["tcp port out of range", () => ({ id: name(), endpoint: "tcp://10.0.0.5:70000", tls: tls() }), "endpoint"],
    ["tcp with a path", () => ({ id: name(), endpoint: "tcp://10.0.0.5:2376/x", tls: tls() }), "endpoint"],
    ["tcp without tls", () => ({ id: name(), endpoint: "tcp://10.0.0.5:2376" }), "tls"],
    ["tls on a unix endpoint", () => ({ id: name(), endpoint: "unix:///var/run/docker.sock", tls: tls() }), "tls"],
    ["garbage CA", () => ({ id: name(), endpoint: "tcp://10.0.0.5:2376", tls: { ...tls(), ca_pem: "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n" } }), "tls.ca_pem"],
    ["garbage certificate", () => ({ id: name(), endpoint: "tcp://10.0.0.5:2376", tls: { ...tls(), cert_pem: "hello" } }), "tls.cert_pem"],
    ["garbage key", () => ({ id: name(), endpoint: "tcp://10.0.0.5:2376", tls: { ...tls(), key_pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" } }), "tls.key_pem"],
    ["a key that does not match the certificate", () => ({ id: name(), endpoint: "tcp://10.0.0.5:2376", tls: { ...tls(), key_pem: pki.otherKey } }), "tls.key_pem"],
    ["tls missing the key", () => ({ id: name(), endpoint: "tcp://10.0.0.5:2376", tls: { ca_pem: pki.ca, cert_pem: pki.cert } }), "tls.key_pem"],
    ["negative max_hosts", () => ({ id: name(), endpoint: "unix:///var/run/docker.sock", max_hosts: -1 }), "max_hosts"],
    ["cpus below a hundredth", () => ({ id: name(), endpoint: "unix:///var/run/docker.sock", cpus: 0.001 }), "cpus"],
    ["zero memory", () => ({ id: name(), endpoint: "unix:///var/run/docker.sock", memory_mb: 0 }), "memory_mb"],
    ["bad label key", () => ({ id: name(), endpoint: "unix:///var/run/docker.sock", labels: { "Bad Key": "x" } }), "labels"],
    ["unknown field", () => ({ id: name(), endpoint: "unix:///var/run/docker.sock", state: "draining" }), ""],
  ];
  for (const [what, body, field] of cases) {
    it(what, async () => {
      const before = await counts();
      const res = await api("POST", "/v1/admin/engines", body());
      expectError(res, 400, "invalid_request", what);
      if (field) expect(JSON.stringify(res.body.details ?? []), res.text).toContain(`"field":"${field}`);
      expect(await counts()).toEqual(before);
    });
  }

  it("a PATCH to a tcp endpoint without tls, or with a mismatched key, changes nothing", async () => {
    const id = await addUnix();
    const before = await counts();
    expectError(await api("PATCH", `/v1/admin/engines/${id}`, { endpoint: "tcp://10.0.0.9:2376" }), 400, "invalid_request");
    expectError(
      await api("PATCH", `/v1/admin/engines/${id}`, { endpoint: "tcp://10.0.0.9:2376", tls: { ...tls(), key_pem: pki.otherKey } }),
      400,
      "invalid_request",
    );
    expectError(await api("PATCH", `/v1/admin/engines/${id}`, { tls: tls() }), 400, "invalid_request", "tls on a unix engine");
    expect(await counts()).toEqual(before);
    const [row] = await sql()<{ endpoint: string; tls_key_enc: string | null }[]>`select endpoint, tls_key_enc from engines where id = ${id}`;
    expect(row).toEqual({ endpoint: `unix:///run/${id}.sock`, tls_key_enc: null });
  });
});

describe("a tcp engine's TLS material", () => {
  it("shows fingerprints only; the key is encrypted at rest, bound to its row, and never leaves", async () => {
    const id = name("tcp");
    const res = await api("POST", "/v1/admin/engines", { id, endpoint: "tcp://10.0.0.5:2376", tls: tls(), labels: { zone: "b" } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.engine.tls).toEqual({ ca_sha256: sha256(pki.ca), cert_sha256: sha256(pki.cert) });
    expect(JSON.stringify(res.body)).not.toMatch(/PRIVATE KEY|key_pem|tls_key/);

    const [row] = await sql()<{ tls_key_enc: string; tls_ca_pem: string }[]>`select tls_key_enc, tls_ca_pem from engines where id = ${id}`;
    expect(row!.tls_key_enc.startsWith("v"), row!.tls_key_enc.slice(0, 8)).toBe(true);
    expect(row!.tls_key_enc).not.toContain(pemBody(pki.key).slice(0, 40));
    expect(h.deps.secrets.decrypt(row!.tls_key_enc, secretAt.engine(id))).toBe(pki.key.replace(/\r\n/g, "\n").trim() + "\n");
    expect(() => h.deps.secrets.decrypt(row!.tls_key_enc, secretAt.engine("another-engine"))).toThrow();
    expect(() => h.deps.secrets.decrypt(row!.tls_key_enc, secretAt.systemKey(id))).toThrow();

    // Re-sending the same material changes nothing; a new endpoint keeps the stored material.
    const same = await api("PATCH", `/v1/admin/engines/${id}`, { tls: tls() });
    expect(same.status, same.text).toBe(200);
    const moved = await api("PATCH", `/v1/admin/engines/${id}`, { endpoint: "tcp://engine-b.example.test:2376" });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body.engine.tls).toEqual(res.body.engine.tls);
    const [kept] = await sql()<{ tls_key_enc: string }[]>`select tls_key_enc from engines where id = ${id}`;
    expect(kept!.tls_key_enc).toBe(row!.tls_key_enc);
    const [upd] = await sql()<{ metadata: { changed_fields: string[] } }[]>`
      select metadata from events where type = 'engine.updated' and metadata->>'engine_id' = ${id}`;
    expect(upd!.metadata.changed_fields).toEqual(["endpoint"]);

    // New material (another client certificate and its key) replaces all three.
    const rotated = await api("PATCH", `/v1/admin/engines/${id}`, { tls: { ca_pem: pki.ca, cert_pem: pki.otherCert, key_pem: pki.otherKey } });
    expect(rotated.status, rotated.text).toBe(200);
    expect(rotated.body.engine.tls.cert_sha256).toBe(sha256(pki.otherCert));
    const [again] = await sql()<{ tls_key_enc: string }[]>`select tls_key_enc from engines where id = ${id}`;
    expect(h.deps.secrets.decrypt(again!.tls_key_enc, secretAt.engine(id))).toBe(pki.otherKey.trim() + "\n");

    // Back to a socket: the material goes.
    const unix = await api("PATCH", `/v1/admin/engines/${id}`, { endpoint: "unix:///var/run/docker.sock" });
    expect(unix.status, unix.text).toBe(200);
    expect(unix.body.engine.tls).toBeNull();
    const [gone] = await sql()<{ k: string | null; ca: string | null }[]>`select tls_key_enc as k, tls_ca_pem as ca from engines where id = ${id}`;
    expect(gone).toEqual({ k: null, ca: null });

    // Every response, log line and event of this file so far: no piece of either key.
    const events = await sql()<{ e: string }[]>`select row_to_json(events)::text as e from events`;
    expect(findSecrets(h.responses, secrets), "in a response").toEqual([]);
    expect(findSecrets(h.logs, secrets), "in a log line").toEqual([]);
    expect(findSecrets(events.map((r) => r.e), secrets), "in an event").toEqual([]);
  });
});

describe("authorization", () => {
  it("a user's token gets the answer every admin route gives it: 403 forbidden, nothing written", async () => {
    const id = await addUnix();
    const before = await counts();
    const calls: [string, string, unknown?][] = [
      ["GET", "/v1/admin/engines"],
      ["POST", "/v1/admin/engines", { id: name(), endpoint: "unix:///var/run/docker.sock" }],
      ["GET", `/v1/admin/engines/${id}`],
      ["PATCH", `/v1/admin/engines/${id}`, { labels: { x: "y" } }],
      ["POST", `/v1/admin/engines/${id}/cordon`],
      ["POST", `/v1/admin/engines/${id}/uncordon`],
      ["POST", `/v1/admin/engines/${id}/drain`],
      ["DELETE", `/v1/admin/engines/${id}`],
    ];
    for (const [method, path, body] of calls) expectError(await api(method, path, body, user.token), 403, "forbidden", `${method} ${path}`);
    for (const [method, path, body] of calls) expectError(await h.request(method, path, { body }), 401, "unauthorized", `${method} ${path}`);
    expect(await counts()).toEqual(before);
  });
});

describe("scheduling state and placement", () => {
  it("places no host on a cordoned or draining engine; uncordoned, it takes them again", async () => {
    const tag = randomBytes(4).toString("hex");
    const id = await addUnix({ labels: { suite: tag } });
    const create = async () => {
      const u = await insertUserRow(sql());
      return api("POST", "/v1/admin/hosts", { user_id: u, placement: { selector: { suite: tag } } });
    };
    for (const verb of ["cordon", "drain"]) {
      expect((await api("POST", `/v1/admin/engines/${id}/${verb}`)).status).toBe(200);
      const before = await sql()<{ n: string }[]>`select count(*) as n from hosts`;
      expectError(await create(), 409, "no_capacity", verb);
      expect(await sql()<{ n: string }[]>`select count(*) as n from hosts`).toEqual(before);
    }
    expect((await api("POST", `/v1/admin/engines/${id}/uncordon`)).status).toBe(200);
    const ok = await create();
    expect(ok.status, ok.text).toBe(202);
    const [row] = await sql()<{ engine_id: string }[]>`select engine_id from hosts where id = ${ok.body.host.id}`;
    expect(row!.engine_id).toBe(id);
    // The admin host object names its engine (docs/api.md#hosts).
    expect(ok.body.host.engine_id).toBe(id);
  });
});
