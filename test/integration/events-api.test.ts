import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, type TestUser, createApiHarness } from "../../shared/test/api-harness.js";
import { insertEventRow } from "../../shared/test/rows.js";

/**
 * Events endpoint (docs/api.md#events). Fixture events are inserted
 * with exact timestamps in 2001, far from the rows the API writes while the suite runs, and each
 * case scopes its query to its own window or ids.
 */
let h: ApiHarness;
let admin: string;
let user: TestUser;

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  user = await h.createUser();
});
afterAll(async () => {
  await h?.close();
});

const EVENT_KEYS = ["actor_id", "created_at", "host_id", "id", "level", "message", "metadata", "task_id", "type", "user_id"];

type Ev = { id: string; type: string; level: string; user_id: string | null; host_id: string | null; created_at: string };

async function list(q: string) {
  const res = await h.request("GET", `/v1/admin/events?${q}`, { token: admin });
  expect(res.status, `${q}: ${res.text}`).toBe(200);
  return res.body as { events: Ev[]; total: number; limit: number; offset: number };
}

async function expect400(q: string, field: string) {
  const res = await h.request("GET", `/v1/admin/events?${q}`, { token: admin });
  expect(res.status, `${q}: ${res.text}`).toBe(400);
  expect(res.body.code).toBe("invalid_request");
  expect(res.body.details.map((d: { field: string }) => d.field), `${q}: ${res.text}`).toContain(field);
}

/** A day of 2001 used by one test only: `day(3)` → "2001-01-03". */
const day = (n: number) => `2001-01-${String(n).padStart(2, "0")}`;
const window = (n: number) => `since=${day(n)}T00:00:00Z&until=${day(n)}T23:59:59.999Z`;

describe("security", () => {
  it("answers 401 without a token and 403 with a user token", async () => {
    const anon = await h.request("GET", "/v1/admin/events");
    expect(anon.status, anon.text).toBe(401);
    expect(anon.body.code).toBe("unauthorized");
    const asUser = await h.request("GET", "/v1/admin/events", { token: user.token });
    expect(asUser.status, asUser.text).toBe(403);
    expect(asUser.body.code).toBe("forbidden");
  });
});

describe("GET /v1/admin/events", () => {
  it("renders exactly the docs/api.md#events event object", async () => {
    const ids = { actor: randomUUID(), user: randomUUID(), host: randomUUID(), task: randomUUID() };
    const id = await insertEventRow(h.database.sql, {
      type: "host.started",
      level: "info",
      message: "host k3x9qa started",
      actorId: ids.actor,
      userId: ids.user,
      hostId: ids.host,
      taskId: ids.task,
      metadata: { duration_ms: 2140 },
      createdAt: `${day(1)}T10:00:00.000Z`,
    });
    const body = await list(window(1));
    expect(body).toMatchObject({ total: 1, limit: 50, offset: 0 });
    expect(Object.keys(body).sort()).toEqual(["events", "limit", "offset", "total"]);
    expect(Object.keys(body.events[0]!).sort()).toEqual(EVENT_KEYS);
    expect(body.events[0]).toEqual({
      id,
      type: "host.started",
      level: "info",
      message: "host k3x9qa started",
      actor_id: ids.actor,
      user_id: ids.user,
      host_id: ids.host,
      task_id: ids.task,
      metadata: { duration_ms: 2140 },
      created_at: `${day(1)}T10:00:00.000Z`,
    });
  });

  it("clamps limit=500 to 200 and rejects bad pagination", async () => {
    const body = await list("limit=500");
    expect(body.limit).toBe(200);
    expect(body.offset).toBe(0);
    await expect400("limit=0", "query.limit");
    await expect400("limit=abc", "query.limit");
    await expect400("offset=-3", "query.offset");
  });

  it("lists newest first (created_at, then id, descending) and paginates with an exact total", async () => {
    const at = (s: string) => `${day(2)}T08:00:${s}Z`;
    const a = await insertEventRow(h.database.sql, { type: "user.created", createdAt: at("01.000") });
    const c = await insertEventRow(h.database.sql, { type: "user.created", createdAt: at("03.000") });
    const b = await insertEventRow(h.database.sql, { type: "user.created", createdAt: at("02.000") });
    // Two events in the same microsecond: the larger id comes first.
    const t1 = await insertEventRow(h.database.sql, { type: "user.created", createdAt: at("04.000") });
    const t2 = await insertEventRow(h.database.sql, { type: "user.created", createdAt: at("04.000") });
    const [hi, lo] = t1 > t2 ? [t1, t2] : [t2, t1];
    const all = await list(window(2));
    expect(all.events.map((e) => e.id)).toEqual([hi, lo, c, b, a]);
    expect(all.total).toBe(5);
    const page = await list(`${window(2)}&limit=2&offset=2`);
    expect(page).toMatchObject({ total: 5, limit: 2, offset: 2 });
    expect(page.events.map((e) => e.id)).toEqual([c, b]);
  });

  it("includes events exactly at the since and until bounds, and nothing outside them", async () => {
    const t = (s: string) => `${day(3)}T12:00:${s}Z`;
    const before = await insertEventRow(h.database.sql, { type: "x.before", createdAt: t("00.999") });
    const atSince = await insertEventRow(h.database.sql, { type: "x.since", createdAt: t("01.000") });
    const middle = await insertEventRow(h.database.sql, { type: "x.middle", createdAt: t("02.000") });
    const atUntil = await insertEventRow(h.database.sql, { type: "x.until", createdAt: t("03.000") });
    const after = await insertEventRow(h.database.sql, { type: "x.after", createdAt: t("03.001") });

    const body = await list(`since=${t("01.000")}&until=${t("03.000")}`);
    expect(body.events.map((e) => e.id)).toEqual([atUntil, middle, atSince]);
    expect(body.total).toBe(3);

    // Same bounds written with an offset instead of Z.
    const offset = await list(`since=${day(3)}T14:00:01%2B02:00&until=${day(3)}T07:00:03-05:00`);
    expect(offset.events.map((e) => e.id)).toEqual([atUntil, middle, atSince]);

    // since == until: exactly that instant.
    const point = await list(`since=${t("02.000")}&until=${t("02.000")}`);
    expect(point.events.map((e) => e.id)).toEqual([middle]);

    // Only one bound.
    const onlySince = await list(`since=${t("03.000")}&until=${day(3)}T23:59:59Z`);
    expect(onlySince.events.map((e) => e.id)).toEqual([after, atUntil]);
    const onlyUntil = await list(`until=${t("01.000")}&since=${day(3)}T00:00:00Z`);
    expect(onlyUntil.events.map((e) => e.id)).toEqual([atSince, before]);
  });

  it("finds an event by its own displayed created_at even when stored with microseconds", async () => {
    // Postgres keeps microseconds; clients see milliseconds. `until` covers its whole millisecond.
    const id = await insertEventRow(h.database.sql, { type: "x.micro", createdAt: `${day(4)}T09:30:00.123456Z` });
    const later = await insertEventRow(h.database.sql, { type: "x.micro", createdAt: `${day(4)}T09:30:00.124000Z` });
    const shown = (await list(window(4))).events.find((e) => e.id === id)!.created_at;
    expect(shown).toBe(`${day(4)}T09:30:00.123Z`);
    const body = await list(`since=${shown}&until=${shown}`);
    expect(body.events.map((e) => e.id)).toEqual([id]);
    expect((await list(`since=${day(4)}T09:30:00.124Z&until=${day(4)}T09:30:00.124Z`)).events.map((e) => e.id)).toEqual([later]);
  });

  it("filters by user_id, host_id, level and type (exact or `prefix.*`)", async () => {
    const u1 = randomUUID();
    const u2 = randomUUID();
    const h1 = randomUUID();
    const h2 = randomUUID();
    const at = (m: number) => `${day(5)}T10:${String(m).padStart(2, "0")}:00.000Z`;
    const ins = (type: string, createdAt: string, extra: { userId?: string; hostId?: string; level?: "info" | "warn" | "error" } = {}) =>
      insertEventRow(h.database.sql, { type, createdAt, ...extra });
    const hostCreated = await ins("host.created", at(1), { userId: u1, hostId: h1 });
    const hostStartReq = await ins("host.start.requested", at(2), { userId: u1, hostId: h1 });
    const hostFailed = await ins("host.failed", at(3), { userId: u2, hostId: h2, level: "error" });
    const userCreated = await ins("user.created", at(4), { userId: u1 });
    const verifyFailed = await ins("egress.verify.failed", at(5), { level: "error" });
    const loginFailed = await ins("auth.login.failed", at(6), { level: "warn" });
    // Look-alikes a sloppy prefix match would catch: `hosts.` and `hostx`.
    const hostsThing = await ins("hosts.thing", at(7));
    const hostx = await ins("hostx.created", at(8));
    // `_` and `%` in a prefix are literal characters, not LIKE wildcards.
    const sshKey = await ins("ssh_key.added", at(9));
    const sshXKey = await ins("sshXkey.added", at(10));
    const pct = await ins("a%b.added", at(11));
    const ab = await ins("aZZb.added", at(12));

    const ids = async (q: string) => (await list(`${window(5)}&${q}`)).events.map((e) => e.id);

    expect(await ids(`user_id=${u1}`)).toEqual([userCreated, hostStartReq, hostCreated]);
    expect(await ids(`user_id=${u1.toUpperCase()}`)).toEqual([userCreated, hostStartReq, hostCreated]);
    expect(await ids(`host_id=${h2}`)).toEqual([hostFailed]);
    expect(await ids(`host_id=${h1}&user_id=${u1}`)).toEqual([hostStartReq, hostCreated]);
    expect(await ids(`host_id=${h1}&user_id=${u2}`)).toEqual([]);
    expect(await ids("type=host.*")).toEqual([hostFailed, hostStartReq, hostCreated]);
    expect(await ids("type=host.start.*")).toEqual([hostStartReq]);
    expect(await ids("type=host.created")).toEqual([hostCreated]);
    // Exact means exact: no prefix match without `.*`.
    expect(await ids("type=host")).toEqual([]);
    expect(await ids("type=hosts.*")).toEqual([hostsThing]);
    expect(await ids("type=hostx.created")).toEqual([hostx]);
    expect(await ids("type=ssh_key.*")).toEqual([sshKey]);
    expect(await ids("type=sshXkey.*")).toEqual([sshXKey]);
    expect(await ids("type=a%25b.*")).toEqual([pct]);
    expect(await ids("type=aZZb.*")).toEqual([ab]);
    expect(await ids("level=error")).toEqual([verifyFailed, hostFailed]);
    expect(await ids("level=warn")).toEqual([loginFailed]);
    expect(await ids("level=error&type=host.*")).toEqual([hostFailed]);
    const total = await list(`${window(5)}&level=info`);
    expect(total.total).toBe(9);
  });

  it("rejects malformed filters with 400 naming the query field", async () => {
    await expect400("since=yesterday", "query.since");
    await expect400("since=2001-01-01", "query.since");
    await expect400("since=2001-01-01T10:00:00", "query.since");
    await expect400("since=2001-13-01T10:00:00Z", "query.since");
    await expect400("until=not-a-date", "query.until");
    await expect400("user_id=not-a-uuid", "query.user_id");
    await expect400("host_id=12345", "query.host_id");
    await expect400("level=debug", "query.level");
  });

  it("rejects since after until with 400 on query.since, and lists every problem at once", async () => {
    await expect400(`since=${day(6)}T10:00:00.001Z&until=${day(6)}T10:00:00.000Z`, "query.since");
    const res = await h.request("GET", `/v1/admin/events?since=${day(6)}T11:00:00Z&until=${day(6)}T10:00:00Z&user_id=x`, {
      token: admin,
    });
    expect(res.status, res.text).toBe(400);
    expect(res.body.details.map((d: { field: string }) => d.field).sort()).toEqual(["query.since", "query.user_id"]);
  });

  it("shows the events the API itself writes, with the caller as actor", async () => {
    const adminRow = await h.database.sql<{ id: string }[]>`select id from users where role = 'admin'`;
    const body = await list(`user_id=${user.id}&type=user.created`);
    expect(body.total).toBe(1);
    expect(body.events[0]).toMatchObject({ type: "user.created", level: "info", user_id: user.id });
    expect((body.events[0] as unknown as { actor_id: string }).actor_id).toBe(adminRow[0]!.id);
  });
});
