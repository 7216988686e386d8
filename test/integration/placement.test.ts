import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, type TestResponse, createApiHarness } from "../../shared/test/api-harness.js";
import { insertUserRow } from "../../shared/test/rows.js";

/**
 * Placement through the real API (docs/engines.md#placement): engines added with POST
 * /v1/admin/engines, hosts created concurrently with POST /v1/admin/hosts. No worker runs: the
 * hosts stay pending where placement put them, which is all that is checked. Each case labels its
 * own engines and selects them, so the `default` engine (unlimited) and other cases never interfere.
 */
let h: ApiHarness;
let admin: string;

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
});
afterAll(async () => {
  await h?.close();
});

const sql = () => h.database.sql;

function expectError(res: TestResponse, status: number, code: string) {
  expect(res.status, res.text).toBe(status);
  expect(res.body, `not the error envelope: ${res.text}`).toMatchObject({ error: expect.any(String), code });
}

/** Engines of one case: `suite=<tag>` plus their own labels. */
async function addEngines(tag: string, specs: { name: string; labels?: Record<string, string>; max_hosts?: number; memory_mb?: number }[]) {
  for (const s of specs) {
    const { name, labels, ...capacity } = s;
    const res = await h.request("POST", "/v1/admin/engines", {
      token: admin,
      body: { id: `${tag}-${name}`, endpoint: `unix:///run/${tag}-${name}.sock`, labels: { suite: tag, ...labels }, ...capacity },
    });
    expect(res.status, res.text).toBe(201);
  }
}

async function createHosts(n: number, placement: Record<string, unknown>): Promise<TestResponse[]> {
  const users = await Promise.all(Array.from({ length: n }, () => insertUserRow(sql())));
  return Promise.all(users.map((u) => h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u, placement } })));
}

async function perEngine(tag: string): Promise<Record<string, number>> {
  const rows = await sql()<{ engine_id: string; n: string }[]>`
    select engine_id, count(*) as n from hosts where engine_id like ${`${tag}-%`} group by engine_id`;
  return Object.fromEntries(rows.map((r) => [r.engine_id.slice(tag.length + 1), Number(r.n)]));
}

const newTag = () => `p${randomBytes(4).toString("hex")}`;

describe("placement through POST /v1/admin/hosts", () => {
  it("30 concurrent creates over three engines of 10: never over capacity, spread 10/10/10; the 31st is no_capacity", async () => {
    const tag = newTag();
    await addEngines(tag, [{ name: "a", max_hosts: 10 }, { name: "b", max_hosts: 10 }, { name: "c", max_hosts: 10 }]);
    const results = await createHosts(30, { strategy: "spread", selector: { suite: tag } });
    for (const r of results) expect(r.status, r.text).toBe(202);
    expect(await perEngine(tag)).toEqual({ a: 10, b: 10, c: 10 });
    const [extra] = await createHosts(1, { selector: { suite: tag } });
    expectError(extra!, 409, "no_capacity");
    expect(await perEngine(tag)).toEqual({ a: 10, b: 10, c: 10 });
    // The engines' own view agrees.
    const list = await h.request("GET", "/v1/admin/engines", { token: admin });
    const mine = (list.body.engines as { id: string; counts: { hosts: number } }[]).filter((e) => e.id.startsWith(`${tag}-`));
    expect(mine.map((e) => e.counts.hosts)).toEqual([10, 10, 10]);
  });

  it("memory capacity: concurrent creates fill each engine exactly, the rest are no_capacity", async () => {
    const tag = newTag();
    // Default hosts ask for 4096 MiB: 3 fit on a, 2 on b.
    await addEngines(tag, [{ name: "a", memory_mb: 12288 }, { name: "b", memory_mb: 10000 }]);
    const results = await createHosts(8, { selector: { suite: tag } });
    expect(results.filter((r) => r.status === 202)).toHaveLength(5);
    for (const r of results.filter((x) => x.status !== 202)) expectError(r, 409, "no_capacity");
    expect(await perEngine(tag)).toEqual({ a: 3, b: 2 });
    const [used] = await sql()<{ m: string }[]>`select sum(memory_limit_mb) as m from hosts where engine_id = ${`${tag}-b`}`;
    expect(Number(used!.m)).toBeLessThanOrEqual(10000);
  });

  it("a selector picks only the engines that carry every label it names", async () => {
    const tag = newTag();
    await addEngines(tag, [
      { name: "a", labels: { zone: "a" } },
      { name: "b", labels: { zone: "b", disk: "ssd" } },
      { name: "c", labels: { zone: "b" } },
    ]);
    const results = await createHosts(6, { selector: { suite: tag, zone: "b", disk: "ssd" } });
    for (const r of results) expect(r.status, r.text).toBe(202);
    expect(await perEngine(tag)).toEqual({ b: 6 });
    const [none] = await createHosts(1, { selector: { suite: tag, zone: "c" } });
    expectError(none!, 409, "no_capacity");
  });

  it("pack fills one engine before the next", async () => {
    const tag = newTag();
    await addEngines(tag, [{ name: "a", max_hosts: 10 }, { name: "b", max_hosts: 10 }, { name: "c", max_hosts: 10 }]);
    const results = await createHosts(12, { strategy: "pack", selector: { suite: tag } });
    for (const r of results) expect(r.status, r.text).toBe(202);
    expect(await perEngine(tag)).toEqual({ a: 10, b: 2 });
  });
});
