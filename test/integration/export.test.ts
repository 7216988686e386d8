import { asc } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ndjsonResponse } from "../../api/http/ndjson.js";
import { events } from "../../shared/db/schema/index.js";
import { createLogger } from "../../shared/logger.js";
import { renderEvent } from "../../shared/services/events/query.js";
import type { ExportPager } from "../../shared/services/export/keyset.js";
import { type ApiHarness, createApiHarness, type TestUser } from "../../shared/test/api-harness.js";
import { insertHostRow } from "../../shared/test/rows.js";
import type { EventView } from "../../shared/views/index.js";
import { get } from "node:http";
import { Writable } from "node:stream";

/**
 * The NDJSON exports (docs/api.md#export): exactly the rows, in order, one per line, whatever the
 * number of pages (20 000 events = 40 pages, with timestamps shared within a millisecond and
 * exactly, so the keyset cursor is exercised); the list's filters; 400 on a bad query; and a
 * stream that reads the next page only when the client wants it and stops when it goes away.
 */
let h: ApiHarness;
let admin: string;
let u1: TestUser;
let u2: TestUser;
let hostId: string;

const BULK = 20_000;

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  u1 = await h.createUser();
  u2 = await h.createUser();
  hostId = (await insertHostRow(h.database.sql, { userId: u1.id })).id;
  // Six rows per millisecond, in pairs sharing their exact microsecond (ties broken by id).
  await h.database.sql`
    insert into events (type, level, message, user_id, host_id, metadata, created_at)
    select (array['host.created','host.started','egress.attestation.failed','auth.login'])[1 + i % 4],
           (array['info','warn','error'])[1 + i % 3],
           'bulk ' || i,
           case when i % 5 = 0 then ${u1.id}::uuid when i % 5 = 1 then ${u2.id}::uuid end,
           case when i % 7 = 0 then ${hostId}::uuid end,
           jsonb_build_object('i', i),
           timestamptz '2001-02-03T04:05:06Z' + (i / 6) * interval '1 millisecond' + ((i % 6) / 2) * interval '1 microsecond'
    from generate_series(1, ${BULK}) i`;
  await h.database.sql`
    insert into sessions (kind, host_id, user_id, login, method, source_ip, started_at, ended_at, bytes_in, bytes_out, end_reason)
    select (array['ssh','desktop'])[1 + i % 2], ${hostId}::uuid,
           case when i % 3 = 0 then ${u2.id}::uuid else ${u1.id}::uuid end,
           'login' || i, 'publickey', '192.0.2.' || (i % 250),
           timestamptz '2002-03-04T05:06:07Z' + (i / 2) * interval '1 millisecond',
           case when i % 10 = 0 then null else timestamptz '2002-03-04T05:06:07Z' + (i / 2) * interval '1 millisecond' + interval '1 minute' end,
           i * 10, i * 20, case when i % 10 = 0 then null else 'client_closed' end
    from generate_series(1, 1200) i`;
});
afterAll(async () => {
  await h?.close();
});

function lines(text: string): unknown[] {
  expect(text.endsWith("\n") || text === "", "every line ends with \\n").toBe(true);
  return text === "" ? [] : text.slice(0, -1).split("\n").map((l) => JSON.parse(l));
}

async function exportOf(path: string): Promise<unknown[]> {
  const res = await h.request("GET", path, { token: admin });
  expect(res.status, res.text.slice(0, 500)).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/x-ndjson; charset=utf-8");
  return lines(res.text);
}

describe("GET /v1/admin/events/export", () => {
  let all: EventView[];

  it("streams exactly the rows, oldest first, one JSON object per line, in the list's shape", async () => {
    const expected = (await h.database.db.select().from(events).orderBy(asc(events.createdAt), asc(events.id))).map(renderEvent);
    expect(expected.length).toBeGreaterThan(BULK);
    all = (await exportOf("/v1/admin/events/export")) as EventView[];
    expect(all.length).toBe(expected.length);
    expect(all).toEqual(expected);
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
    // The same object as the list shows.
    const listed = await h.request("GET", "/v1/admin/events?limit=1", { token: admin });
    expect(all[all.length - 1]).toEqual(listed.body.events[0]);
  });

  it("applies the list's filters", async () => {
    const cases: [string, (e: EventView) => boolean][] = [
      ["type=host.created", (e) => e.type === "host.created"],
      ["type=egress.*", (e) => e.type.startsWith("egress.")],
      ["level=warn", (e) => e.level === "warn"],
      [`user_id=${u1.id}`, (e) => e.user_id === u1.id],
      [`host_id=${hostId}&type=auth.*`, (e) => e.host_id === hostId && e.type.startsWith("auth.")],
      // `until` includes its whole millisecond, as in the list.
      ["since=2001-02-03T04:05:07.000Z&until=2001-02-03T04:05:07.999Z", (e) => e.created_at >= "2001-02-03T04:05:07.000Z" && e.created_at <= "2001-02-03T04:05:07.999Z"],
      [`since=2001-02-03T06:05:06%2B02:00&user_id=${u2.id}&level=error`, (e) => e.created_at >= "2001-02-03T04:05:06.000Z" && e.user_id === u2.id && e.level === "error"],
    ];
    for (const [q, keep] of cases) {
      const want = all.filter(keep);
      expect(want.length, q).toBeGreaterThan(0);
      expect(await exportOf(`/v1/admin/events/export?${q}`), q).toEqual(want);
    }
    expect(await exportOf("/v1/admin/events/export?type=nothing.here")).toEqual([]);
  });

  it("refuses a bad query with 400 in the error envelope", async () => {
    for (const [q, field] of [
      ["since=yesterday", "query.since"],
      ["user_id=nope", "query.user_id"],
      ["level=loud", "query.level"],
      ["since=2001-02-04T00:00:00Z&until=2001-02-03T00:00:00Z", "query.since"],
    ]) {
      const res = await h.request("GET", `/v1/admin/events/export?${q}`, { token: admin });
      expect(res.status, res.text).toBe(400);
      expect(res.body).toMatchObject({ code: "invalid_request", error: expect.any(String) });
      expect(res.body.details.map((d: { field: string }) => d.field)).toContain(field);
    }
  });

  it("stops reading when the client goes away", async () => {
    const res = await h.app.request(
      "/v1/admin/events/export",
      { headers: { authorization: `Bearer ${admin}` } },
      { incoming: { socket: { remoteAddress: "127.0.0.1" } } },
    );
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    await reader.cancel();
    expect(h.logs.some((l) => l.includes("export canceled by the client"))).toBe(true);
  });

  it("stops reading when a client on a real socket disconnects mid-stream", async () => {
    const api = await h.listen();
    const before = h.logs.filter((l) => l.includes("export canceled by the client")).length;
    await new Promise<void>((resolve, reject) => {
      const req = get(`${api.url}/v1/admin/events/export`, { headers: { authorization: `Bearer ${admin}` } }, (res) => {
        expect(res.statusCode).toBe(200);
        // Take one chunk, then hang up with the rest of the 20 000 rows unsent.
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", (err) => (req.destroyed ? undefined : reject(err)));
    });
    const deadline = Date.now() + 10_000;
    while (h.logs.filter((l) => l.includes("export canceled by the client")).length === before) {
      if (Date.now() > deadline) throw new Error("the export was not canceled after the client hung up");
      await new Promise((r) => setTimeout(r, 20));
    }
    // The stream is canceled only while pages remain (a finished one closes instead): the server
    // stopped reading the table when the client went away.
  });
});

describe("GET /v1/admin/sessions/export", () => {
  it("streams every session oldest first, in the list's shape, with its filters", async () => {
    const all = (await exportOf("/v1/admin/sessions/export")) as { id: string; kind: string; user_id: string; open: boolean; started_at: string }[];
    expect(all.length).toBe(1200);
    const sorted = [...all].sort((a, b) => (a.started_at < b.started_at ? -1 : a.started_at > b.started_at ? 1 : a.id < b.id ? -1 : 1));
    expect(all.map((s) => s.id)).toEqual(sorted.map((s) => s.id));
    // The list's newest 200 closed sessions are the export's last 200, reversed (open ones' durations move).
    const closed = all.filter((s) => !s.open);
    const listed = await h.request("GET", "/v1/admin/sessions?open=false&limit=200", { token: admin });
    expect(listed.status, listed.text).toBe(200);
    expect(closed.slice(-200).reverse()).toEqual(listed.body.sessions);
    for (const [q, keep] of [
      ["kind=desktop", (s: (typeof all)[number]) => s.kind === "desktop"],
      [`user_id=${u2.id}&open=false`, (s: (typeof all)[number]) => s.user_id === u2.id && !s.open],
      ["open=true", (s: (typeof all)[number]) => s.open],
    ] as const) {
      const got = (await exportOf(`/v1/admin/sessions/export?${q}`)) as typeof all;
      expect(got.map((s) => s.id), q).toEqual(all.filter(keep).map((s) => s.id));
    }
    const bad = await h.request("GET", "/v1/admin/sessions/export?kind=telnet", { token: admin });
    expect(bad.status, bad.text).toBe(400);
    expect(bad.body.details[0].field).toBe("query.kind");
  });
});

describe("ndjsonResponse", () => {
  it("reads the next page only when the client has taken the last one (backpressure)", async () => {
    let calls = 0;
    // An endless source: only the client's reading bounds it.
    const pager: ExportPager<{ n: number }> = async (after) => {
      calls++;
      const from = after ? Number(after.id) : 0;
      return { items: Array.from({ length: 100 }, (_, i) => ({ n: from + i })), next: { at: "", id: String(from + 100) } };
    };
    const log = createLogger({ level: "warn" }, new Writable({ write: (_c, _e, cb) => cb() }));
    const res = await ndjsonResponse({ get: () => undefined } as never, pager, { filename: "x.ndjson", log });
    const reader = res.body!.getReader();
    const seen: number[] = [];
    for (let page = 0; page < 5; page++) {
      const { value } = await reader.read();
      const text = new TextDecoder().decode(value);
      seen.push(...text.trim().split("\n").map((l) => (JSON.parse(l) as { n: number }).n));
      // One page read ahead at most.
      expect(calls).toBeLessThanOrEqual(page + 2);
    }
    expect(seen).toEqual(Array.from({ length: 500 }, (_, i) => i));
    await reader.cancel();
    const after = calls;
    await new Promise((r) => setImmediate(r));
    expect(calls).toBe(after);
  });
});
