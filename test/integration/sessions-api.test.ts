import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, type TestUser, createApiHarness } from "../../shared/test/api-harness.js";
import { insertHostRow } from "../../shared/test/rows.js";
import { closeLostSessions, LIVENESS_TTL_MS, liveKey, pruneSessions, SessionStore } from "../../shared/services/sessions/store.js";
import { AsciicastRecorder } from "../../shared/services/sessions/recorder.js";

/**
 * Session records (docs/sessions.md): the admin and portal lists with their filters and
 * pagination, isolation between users, the recording download, the recording policy, and the
 * store the proxies write through (liveness sweep, retention). Fixture rows start in 2002, far
 * from anything the suite writes live; each case scopes its queries to its own hosts or window.
 */
let h: ApiHarness;
let admin: string;
let alice: TestUser;
let bob: TestUser;
let aliceHost: { id: string; shortId: string };
let bobHost: { id: string; shortId: string };

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  alice = await h.createUser();
  bob = await h.createUser();
  aliceHost = await insertHostRow(h.database.sql, { userId: alice.id });
  bobHost = await insertHostRow(h.database.sql, { userId: bob.id });
});
afterAll(async () => {
  await h?.close();
});

interface Row {
  kind?: "ssh" | "desktop";
  hostId: string;
  userId: string;
  startedAt: string;
  endedAt?: string | null;
  bytesIn?: number;
  bytesOut?: number;
  endReason?: string | null;
  recording?: "off" | "output" | "input";
}

async function insertSession(r: Row): Promise<string> {
  const [row] = await h.database.sql<{ id: string }[]>`
    insert into sessions (kind, host_id, user_id, login, method, source_ip, started_at, ended_at, bytes_in, bytes_out, end_reason, recording)
    values (${r.kind ?? "ssh"}, ${r.hostId}, ${r.userId}, 'login-x', 'publickey', '198.51.100.7', ${r.startedAt},
            ${r.endedAt === undefined ? r.startedAt : r.endedAt}, ${r.bytesIn ?? 0}, ${r.bytesOut ?? 0},
            ${r.endReason === undefined ? "client_closed" : r.endReason}, ${r.recording ?? "off"})
    returning id`;
  return row!.id;
}

const SESSION_KEYS = [
  "bytes_in", "bytes_out", "duration_ms", "end_reason", "ended_at", "has_recording", "host_id", "host_short_id", "id", "kind",
  "login", "method", "open", "recording", "recording_bytes", "recording_truncated", "source_ip", "started_at", "user_id", "username",
];

async function list(path: string, token = admin) {
  const res = await h.request("GET", path, { token });
  expect(res.status, `${path}: ${res.text}`).toBe(200);
  return res.body as { sessions: { id: string; [k: string]: unknown }[]; total: number; limit: number; offset: number };
}

async function expect400(path: string, field: string, token = admin) {
  const res = await h.request("GET", path, { token });
  expect(res.status, `${path}: ${res.text}`).toBe(400);
  expect(res.body.code).toBe("invalid_request");
  expect(res.body.details.map((d: { field: string }) => d.field), `${path}: ${res.text}`).toContain(field);
}

describe("GET /v1/admin/sessions", () => {
  it("renders the session object, newest first, with every filter and the pagination of docs/api.md", async () => {
    const host = await insertHostRow(h.database.sql);
    const base = `host_id=${host.id}`;
    const ids = {
      a: await insertSession({ hostId: host.id, userId: host.userId, startedAt: "2002-01-01T10:00:00.000Z", endedAt: "2002-01-01T10:05:00.000Z", bytesIn: 123, bytesOut: 4567 }),
      b: await insertSession({ kind: "desktop", hostId: host.id, userId: host.userId, startedAt: "2002-01-02T10:00:00.000Z", endReason: "host_closed" }),
      c: await insertSession({ hostId: host.id, userId: host.userId, startedAt: "2002-01-03T10:00:00.000Z", endedAt: null, endReason: null }),
    };
    const all = await list(`/v1/admin/sessions?${base}`);
    expect(all.total).toBe(3);
    expect(all.sessions.map((s) => s.id)).toEqual([ids.c, ids.b, ids.a]);
    const a = all.sessions[2]!;
    expect(Object.keys(a).sort()).toEqual(SESSION_KEYS);
    expect(a).toMatchObject({
      kind: "ssh",
      host_id: host.id,
      host_short_id: host.shortId,
      user_id: host.userId,
      source_ip: "198.51.100.7",
      started_at: "2002-01-01T10:00:00.000Z",
      ended_at: "2002-01-01T10:05:00.000Z",
      duration_ms: 300_000,
      open: false,
      bytes_in: 123,
      bytes_out: 4567,
      end_reason: "client_closed",
      recording: "off",
      has_recording: false,
    });
    expect(all.sessions[0]).toMatchObject({ open: true, ended_at: null, end_reason: null });

    expect((await list(`/v1/admin/sessions?${base}&kind=desktop`)).sessions.map((s) => s.id)).toEqual([ids.b]);
    expect((await list(`/v1/admin/sessions?${base}&open=true`)).sessions.map((s) => s.id)).toEqual([ids.c]);
    expect((await list(`/v1/admin/sessions?${base}&open=false`)).sessions.map((s) => s.id)).toEqual([ids.b, ids.a]);
    expect((await list(`/v1/admin/sessions?user_id=${host.userId}`)).total).toBe(3);
    const window = await list(`/v1/admin/sessions?${base}&since=2002-01-02T00:00:00Z&until=2002-01-02T10:00:00.000Z`);
    expect(window.sessions.map((s) => s.id)).toEqual([ids.b]);
    const page = await list(`/v1/admin/sessions?${base}&limit=1&offset=1`);
    expect(page).toMatchObject({ total: 3, limit: 1, offset: 1 });
    expect(page.sessions.map((s) => s.id)).toEqual([ids.b]);
    expect((await list(`/v1/admin/sessions?${base}&limit=500`)).limit).toBe(200);
    // Records outlive their host and user: the ids stay, the names go null.
    await h.database.sql`delete from hosts where id = ${host.id}`;
    expect((await list(`/v1/admin/sessions?${base}`)).sessions[0]).toMatchObject({ host_short_id: null, host_id: host.id });
  });

  it("answers bad filters with the 400 envelope, never 500", async () => {
    await expect400("/v1/admin/sessions?kind=telnet", "query.kind");
    await expect400("/v1/admin/sessions?open=yes", "query.open");
    await expect400("/v1/admin/sessions?host_id=nope", "query.host_id");
    await expect400("/v1/admin/sessions?user_id=1", "query.user_id");
    await expect400("/v1/admin/sessions?since=2002-01-01", "query.since");
    await expect400("/v1/admin/sessions?since=2002-01-02T00:00:00Z&until=2002-01-01T00:00:00Z", "query.since");
    await expect400("/v1/admin/sessions?limit=0", "query.limit");
    await expect400("/v1/user/sessions?recorded=maybe", "query.recorded", alice.token);
  });

  it("is admin only", async () => {
    const anon = await h.request("GET", "/v1/admin/sessions");
    expect(anon.status, anon.text).toBe(401);
    const asUser = await h.request("GET", "/v1/admin/sessions", { token: alice.token });
    expect(asUser.status, asUser.text).toBe(403);
  });
});

describe("the portal: a user sees only their own sessions", () => {
  it("lists, reads and downloads only the caller's sessions; another user's id is 404", async () => {
    const mine = await insertSession({ hostId: aliceHost.id, userId: alice.id, startedAt: "2002-02-01T10:00:00.000Z", recording: "input" });
    const theirs = await insertSession({ hostId: bobHost.id, userId: bob.id, startedAt: "2002-02-01T11:00:00.000Z", recording: "input" });
    await h.database.sql`insert into session_recording_chunks (session_id, seq, data) values
      (${mine}, 0, '{"version":2,"width":80,"height":24}' || chr(10)), (${theirs}, 0, '{"version":2,"width":80,"height":24}' || chr(10))`;

    const own = await list("/v1/user/sessions", alice.token);
    expect(own.sessions.map((s) => s.id)).toContain(mine);
    expect(own.sessions.every((s) => s.user_id === alice.id), JSON.stringify(own)).toBe(true);
    // Filters cannot widen the scope: another user's host id finds nothing.
    expect((await list(`/v1/user/sessions?host_id=${bobHost.id}`, alice.token)).total).toBe(0);
    // A user_id query parameter is not a filter of the portal (ignored), never a way out.
    expect((await list(`/v1/user/sessions?user_id=${bob.id}`, alice.token)).sessions.every((s) => s.user_id === alice.id)).toBe(true);

    const got = await h.request("GET", `/v1/user/sessions/${mine}`, { token: alice.token });
    expect(got.status, got.text).toBe(200);
    expect(got.body.session).toMatchObject({ id: mine, has_recording: true, recording: "input" });
    for (const path of [`/v1/user/sessions/${theirs}`, `/v1/user/sessions/${theirs}/recording`, `/v1/user/sessions/${randomUUID()}`, "/v1/user/sessions/not-a-uuid"]) {
      const res = await h.request("GET", path, { token: alice.token });
      expect(res.status, `${path}: ${res.text}`).toBe(404);
      expect(res.body.code, path).toBe("session_not_found");
      expect(res.text).not.toContain(theirs);
    }
    const dl = await h.request("GET", `/v1/user/sessions/${mine}/recording`, { token: alice.token });
    expect(dl.status, dl.text).toBe(200);
    expect(dl.headers.get("content-type")).toBe("application/x-asciicast");
    expect(dl.headers.get("x-content-type-options")).toBe("nosniff");
    expect(dl.headers.get("cache-control")).toBe("no-store");
  });

  it("shows the owner an admin's desktop session on their host without the admin's address", async () => {
    const [row] = await h.database.sql<{ id: string }[]>`
      insert into sessions (kind, host_id, user_id, login, method, source_ip, started_at, ended_at, end_reason)
      values ('desktop', ${aliceHost.id}, ${alice.id}, 'admin', 'admin', '198.51.100.99', '2002-03-01T10:00:00Z', '2002-03-01T10:05:00Z', 'closed')
      returning id`;
    const asOwner = await h.request("GET", `/v1/user/sessions/${row!.id}`, { token: alice.token });
    expect(asOwner.status, asOwner.text).toBe(200);
    expect(asOwner.body.session.source_ip).toBeNull();
    expect(asOwner.text).not.toContain("198.51.100.99");
    const listed = await list(`/v1/user/sessions?kind=desktop`, alice.token);
    expect(JSON.stringify(listed)).not.toContain("198.51.100.99");
    const asAdmin = await h.request("GET", `/v1/admin/sessions/${row!.id}`, { token: admin });
    expect(asAdmin.body.session.source_ip).toBe("198.51.100.99");
  });
});

describe("recordings", () => {
  it("streams the .cast from its chunks in seq order, and 404 recording_not_found without one", async () => {
    const id = await insertSession({ hostId: aliceHost.id, userId: alice.id, startedAt: "2002-03-01T10:00:00.000Z", recording: "output" });
    const header = '{"version":2,"width":80,"height":24,"timestamp":1000000000,"env":{"TERM":"xterm"}}\n';
    // 40 chunks, inserted out of order, more than one read of the stream.
    const events = Array.from({ length: 39 }, (_, i) => `[${i + 1}.0,"o","chunk-${i} ünïcødé €\\r\\n"]\n`);
    const chunks = [header, ...events];
    for (const seq of chunks.map((_, i) => i).reverse()) {
      await h.database.sql`insert into session_recording_chunks (session_id, seq, data) values (${id}, ${seq}, ${chunks[seq]!})`;
    }
    const res = await h.request("GET", `/v1/admin/sessions/${id}/recording`, { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-asciicast");
    expect(res.headers.get("content-disposition")).toBe(`attachment; filename="session-${id}.cast"`);
    expect(res.text).toBe(chunks.join(""));

    const none = await insertSession({ hostId: aliceHost.id, userId: alice.id, startedAt: "2002-03-01T11:00:00.000Z" });
    const missing = await h.request("GET", `/v1/admin/sessions/${none}/recording`, { token: admin });
    expect(missing.status, missing.text).toBe(404);
    expect(missing.body.code).toBe("recording_not_found");
    const unknown = await h.request("GET", `/v1/admin/sessions/${randomUUID()}/recording`, { token: admin });
    expect(unknown.body.code).toBe("session_not_found");
  });
});

describe("the recording policy", () => {
  it("is set per user and per host (null inherits), validated, shown in their objects, and audited", async () => {
    const u = await h.request("PUT", `/v1/admin/users/${alice.id}/session-recording`, { token: admin, body: { session_recording: "output" } });
    expect(u.status, u.text).toBe(200);
    expect(u.body.user).toMatchObject({ id: alice.id, session_recording: "output" });
    const hs = await h.request("PUT", `/v1/admin/hosts/${aliceHost.id}/session-recording`, { token: admin, body: { session_recording: "input" } });
    expect(hs.status, hs.text).toBe(200);
    expect(hs.body.host).toMatchObject({ id: aliceHost.id, session_recording: "input" });
    expect((await h.request("GET", `/v1/admin/users/${alice.id}`, { token: admin })).body.user.session_recording).toBe("output");
    expect((await h.request("GET", `/v1/admin/hosts/${aliceHost.id}`, { token: admin })).body.host.session_recording).toBe("input");
    const cleared = await h.request("PUT", `/v1/admin/hosts/${aliceHost.id}/session-recording`, { token: admin, body: { session_recording: null } });
    expect(cleared.body.host.session_recording).toBeNull();
    const ev = await h.database.sql<{ type: string }[]>`select type from events where host_id = ${aliceHost.id} and type = 'host.session_recording.updated'`;
    expect(ev).toHaveLength(2);

    for (const body of [{ session_recording: "everything" }, {}, { session_recording: "off", extra: 1 }]) {
      const bad = await h.request("PUT", `/v1/admin/users/${alice.id}/session-recording`, { token: admin, body });
      expect(bad.status, bad.text).toBe(400);
      expect(bad.body.code).toBe("invalid_request");
    }
    const gone = await h.request("PUT", `/v1/admin/hosts/${randomUUID()}/session-recording`, { token: admin, body: { session_recording: "off" } });
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe("host_not_found");
    const asUser = await h.request("PUT", `/v1/admin/users/${alice.id}/session-recording`, { token: alice.token, body: { session_recording: "off" } });
    expect(asUser.status).toBe(403);
  });
});

describe("the session store the proxies write through", () => {
  const store = () => new SessionStore({ db: h.database.db, redis: h.deps.redis, prefix: h.prefix, logger: h.deps.logger }, 60_000);

  it("opens, records chunks and closes a row; a recording round-trips through the download", async () => {
    const s = store();
    const id = randomUUID();
    let counters = { bytesIn: 0, bytesOut: 0 };
    s.open(
      { id, kind: "ssh", hostId: aliceHost.id, userId: alice.id, login: aliceHost.shortId, method: "password", sourceIp: "192.0.2.9", recording: "input", startedAt: new Date() },
      () => counters,
    );
    const rec = new AsciicastRecorder({ mode: "input", width: 80, height: 24, maxBytes: 1 << 20, chunkBytes: 64, sink: (seq, data) => s.writeChunk(id, seq, data) });
    rec.output(Buffer.from("hello ✓\r\n"));
    rec.input(Buffer.from("exit\r"));
    counters = { bytesIn: 5, bytesOut: 11 };
    await s.refresh();
    const live = await h.request("GET", `/v1/admin/sessions/${id}`, { token: admin });
    expect(live.body.session).toMatchObject({ open: true, bytes_in: 5, bytes_out: 11 });
    expect(await h.deps.redis.pttl(liveKey(h.prefix, id))).toBeGreaterThan(0);
    const r = await rec.close();
    await s.close(id, { endedAt: new Date(), ...counters, endReason: "client_closed", recordingBytes: r.bytes, recordingTruncated: r.truncated });
    await s.stop();
    const got = await h.request("GET", `/v1/admin/sessions/${id}`, { token: admin });
    expect(got.body.session).toMatchObject({ open: false, end_reason: "client_closed", recording_bytes: r.bytes, recording_truncated: false, has_recording: true });
    expect(await h.deps.redis.exists(liveKey(h.prefix, id))).toBe(0);
    const cast = await h.request("GET", `/v1/admin/sessions/${id}/recording`, { token: admin });
    const lines = cast.text.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ version: 2, width: 80, height: 24 });
    expect(lines.slice(1).map((l: unknown[]) => [l[1], l[2]])).toEqual([
      ["o", "hello ✓\r\n"],
      ["i", "exit\r"],
    ]);
    expect(Buffer.byteLength(cast.text)).toBe(r.bytes);
  });

  it("the sweeper closes rows nobody vouches for as `lost`, and leaves live ones alone", async () => {
    const old = new Date(Date.now() - LIVENESS_TTL_MS - 60_000).toISOString();
    const dead = await insertSession({ hostId: aliceHost.id, userId: alice.id, startedAt: old, endedAt: null, endReason: null });
    const alive = await insertSession({ hostId: aliceHost.id, userId: alice.id, startedAt: old, endedAt: null, endReason: null });
    const young = await insertSession({ hostId: aliceHost.id, userId: alice.id, startedAt: new Date().toISOString(), endedAt: null, endReason: null });
    await h.deps.redis.set(liveKey(h.prefix, alive), "1", "PX", 60_000);
    const n = await closeLostSessions(h.database.db, h.deps.redis, h.prefix, new Date());
    expect(n).toBeGreaterThanOrEqual(1);
    const rows = await h.database.sql<{ id: string; end_reason: string | null; ended_at: Date | null }[]>`
      select id, end_reason, ended_at from sessions where id in (${dead}, ${alive}, ${young})`;
    const by = Object.fromEntries(rows.map((r) => [r.id, r]));
    expect(by[dead]).toMatchObject({ end_reason: "lost" });
    expect(by[dead]!.ended_at).not.toBeNull();
    expect(by[alive]).toMatchObject({ end_reason: null, ended_at: null });
    expect(by[young]).toMatchObject({ end_reason: null, ended_at: null });
  });

  it("retention drops old sessions with their recordings, and old recordings sooner", async () => {
    const day = 86_400_000;
    const ago = (d: number) => new Date(Date.now() - d * day).toISOString();
    const ancient = await insertSession({ hostId: aliceHost.id, userId: alice.id, startedAt: ago(400), recording: "output" });
    const oldRec = await insertSession({ hostId: aliceHost.id, userId: alice.id, startedAt: ago(40), recording: "output" });
    const fresh = await insertSession({ hostId: aliceHost.id, userId: alice.id, startedAt: ago(1), recording: "output" });
    const openOld = await insertSession({ hostId: aliceHost.id, userId: alice.id, startedAt: ago(400), endedAt: null, endReason: null });
    for (const id of [ancient, oldRec, fresh]) {
      await h.database.sql`insert into session_recording_chunks (session_id, seq, data) values (${id}, 0, 'x')`;
      await h.database.sql`update sessions set recording_bytes = 1 where id = ${id}`;
    }
    await pruneSessions(h.database.db, new Date(), { sessionDays: 365, recordingDays: 30 });
    const left = await h.database.sql<{ id: string; recording_bytes: number; chunks: number }[]>`
      select s.id, s.recording_bytes, (select count(*)::int from session_recording_chunks c where c.session_id = s.id) as chunks
      from sessions s where s.id in (${ancient}, ${oldRec}, ${fresh}, ${openOld})`;
    const by = Object.fromEntries(left.map((r) => [r.id, r]));
    expect(by[ancient]).toBeUndefined();
    expect(by[oldRec]).toMatchObject({ recording_bytes: 0, chunks: 0 });
    expect(by[fresh]).toMatchObject({ recording_bytes: 1, chunks: 1 });
    // An open session is never pruned (the sweeper closes it first if its process died).
    expect(by[openOld]).toBeDefined();
  });
});
