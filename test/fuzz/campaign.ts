import fc from "fast-check";
import type { ApiHarness, TestResponse } from "../../shared/test/api-harness.js";
import { insertBindingRow, insertEgressRow, insertHostRow, insertTaskRow } from "../../shared/test/rows.js";
import { type JsonSchema, arbitraryFor, nastyString } from "./schema-arbitrary.js";

/**
 * Schema-driven fuzzing of every route of /openapi.json (issue 10 §6), against an in-process API
 * on real Postgres and Redis. Each request is drawn by fast-check from the route's own schemas
 * (path, query, body) with a credential (admin, a tenant, none, garbage) and real or hostile ids.
 * What must hold for every response: no status ≥ 500, every 4xx in the error envelope
 * (docs/api.md#errors). After the campaign: the API still answers and Postgres holds no half-written
 * rows (see checkInvariants).
 */

interface Operation {
  method: string;
  path: string;
  params: { name: string; in: string; required?: boolean; schema?: JsonSchema }[];
  body?: JsonSchema;
  bodyRequired: boolean;
}

export interface Failure {
  request: string;
  status: number;
  body: string;
  reason: string;
}

export interface CampaignResult {
  requests: number;
  byStatus: Record<number, number>;
  failures: Failure[];
  routes: number;
}

interface Fixtures {
  ids: Record<string, string[]>;
  /** Who may be the caller: the admin or one of the tenants. */
  callers: string[];
}

function operations(doc: { paths: Record<string, Record<string, Record<string, unknown>>> }): Operation[] {
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const rb = op.requestBody as { required?: boolean; content?: Record<string, { schema?: JsonSchema }> } | undefined;
      ops.push({
        method: method.toUpperCase(),
        path,
        params: (op.parameters as Operation["params"]) ?? [],
        body: rb?.content?.["application/json"]?.schema,
        bodyRequired: rb?.required ?? false,
      });
    }
  }
  return ops;
}

/** Two tenants with a resource of every kind, so generated ids often name real rows. */
async function makeFixtures(h: ApiHarness): Promise<Fixtures> {
  const sql = h.database.sql;
  const ids: Record<string, string[]> = { host: [], key: [], user: [], task: [], egress: [], binding: [], shortId: [] };
  const callers: string[] = [(await h.database.sql<{ id: string }[]>`select id from users where role = 'admin'`)[0]!.id];
  // Tenants 0–1 can be named as {userID} (and so disabled, expired or deleted by the admin's
  // requests); tenants 2–3 never are, so the campaign keeps callers whose tokens stay good.
  for (let i = 0; i < 4; i++) {
    const u = await h.createUser();
    callers.push(u.id);
    // Stopped hosts: every route that would reach a container answers 409 instead of dialling one.
    const host = await insertHostRow(sql, { userId: u.id, status: "stopped", desiredState: "stopped" });
    const gen = await h.request("POST", "/v1/user/ssh-keys/generate", { token: u.token, body: {} });
    const egress = await insertEgressRow(sql);
    if (i < 2) ids.user!.push(u.id);
    ids.host!.push(host.id);
    ids.shortId!.push(host.shortId);
    ids.key!.push(gen.body?.ssh_key?.id ?? gen.body?.key?.id ?? gen.body?.id);
    ids.egress!.push(egress);
    ids.binding!.push(await insertBindingRow(sql, host.id, egress));
    ids.task!.push(await insertTaskRow(sql, { kind: "host.start", hostId: host.id }));
  }
  return { ids, callers };
}

const KIND_OF_PARAM: Record<string, string> = {
  hostID: "host",
  keyID: "key",
  userID: "user",
  taskID: "task",
  ipID: "egress",
  bindingID: "binding",
  shortId: "shortId",
};

function paramArb(name: string, schema: JsonSchema | undefined, f: Fixtures): fc.Arbitrary<string> {
  const kind = KIND_OF_PARAM[name];
  const real = kind && f.ids[kind]!.length ? fc.constantFrom(...f.ids[kind]!) : fc.uuid();
  return fc.oneof(
    { arbitrary: real, weight: 5 },
    { arbitrary: fc.uuid(), weight: 2 },
    { arbitrary: arbitraryFor(schema).map((v) => (typeof v === "string" ? v : JSON.stringify(v) ?? "")), weight: 1 },
    { arbitrary: nastyString, weight: 1 },
  );
}

/** Lone surrogates cannot be percent-encoded; a client sends U+FFFD in their place. */
const wellFormed = (v: string) => Buffer.from(v, "utf8").toString("utf8");

function requestArb(op: Operation, f: Fixtures) {
  const pathParams = op.params.filter((p) => p.in === "path");
  const queryParams = op.params.filter((p) => p.in === "query");
  return fc.record({
    path: fc.tuple(...pathParams.map((p) => paramArb(p.name, p.schema, f))).map((values) => {
      let i = 0;
      return op.path.replace(/\{(\w+)\}/g, () => encodeURIComponent(wellFormed(values[i++] ?? "x")) || "x");
    }),
    query: fc.tuple(
      ...queryParams.map((p) =>
        fc.option(arbitraryFor(p.schema).map((v) => [p.name, typeof v === "string" ? v : JSON.stringify(v) ?? ""] as const), { freq: 2 }),
      ),
    ),
    body: op.body ? fc.option(arbitraryFor(op.body), { freq: 12 }) : fc.constant(null),
    rawBody: fc.option(fc.oneof(fc.constant("{"), fc.constant("[]"), fc.constant('{"a":'), nastyString), { freq: 20 }),
    auth: fc.oneof(
      // Most routes are the admin's: the admin calls as often as the four tenants together.
      { arbitrary: fc.constant({ caller: f.callers[0]! }), weight: 4 },
      { arbitrary: fc.constantFrom(...f.callers.slice(1)).map((id) => ({ caller: id })), weight: 4 },
      { arbitrary: fc.constant(undefined), weight: 1 },
      { arbitrary: nastyString.map((s) => `Bearer ${s.replace(/[^\x21-\x7e]/g, "")}`), weight: 1 },
    ),
  });
}

async function tokenFor(h: ApiHarness, userId: string): Promise<string> {
  const [row] = await h.database.sql<{ id: string; role: "admin" | "user"; token_version: number }[]>`
    select id, role, token_version from users where id = ${userId}`;
  return (await h.deps.tokens.issue({ id: row!.id, role: row!.role, tokenVersion: row!.token_version })).token;
}

/** A 4xx must be the documented envelope: `{error: string, code: snake_case}` (docs/api.md#errors). */
function envelopeProblem(res: TestResponse): string | null {
  const b = res.body as { error?: unknown; code?: unknown } | undefined;
  if (!b || typeof b !== "object") return "4xx body is not a JSON object";
  if (typeof b.error !== "string" || !b.error) return "4xx without an `error` message";
  if (typeof b.code !== "string" || !/^[a-z][a-z0-9_]*$/.test(b.code)) return "4xx without a snake_case `code`";
  return null;
}

export async function runCampaign(h: ApiHarness, opts: { runs: number; seed: number }): Promise<CampaignResult> {
  const doc = (await h.request("GET", "/openapi.json")).body;
  const ops = operations(doc);
  const f = await makeFixtures(h);
  const result: CampaignResult = { requests: 0, byStatus: {}, failures: [], routes: ops.length };
  const arb = fc.oneof(...ops.map((op) => requestArb(op, f).map((r) => ({ op, r }))));

  await fc.assert(
    fc.asyncProperty(arb, async ({ op, r }) => {
      const qs = new URLSearchParams(r.query.filter((q): q is readonly [string, string] => q !== null) as [string, string][]);
      const url = `${r.path}${qs.size ? `?${qs}` : ""}`;
      const sendsBody = op.method !== "GET" && op.method !== "DELETE";
      const headers: Record<string, string> = {};
      // A caller's token is minted for its row as it is now: the campaign itself rotates passwords
      // and disables users, and a stale token would only measure the auth check from then on.
      if (sendsBody && r.rawBody !== null) headers["content-type"] = "application/json";
      if (typeof r.auth === "object") headers.authorization = `Bearer ${await tokenFor(h, r.auth.caller)}`;
      else if (r.auth) headers.authorization = r.auth;
      let res: TestResponse;
      try {
        res = await h.request(op.method, url, {
          headers,
          ...(sendsBody && r.rawBody !== null
            ? { rawBody: r.rawBody }
            : sendsBody && r.body !== null
              ? { body: r.body }
              : {}),
        });
      } catch (err) {
        result.failures.push({ request: `${op.method} ${url.slice(0, 300)}`, status: 0, body: String(err), reason: "request threw" });
        return true;
      }
      result.requests++;
      result.byStatus[res.status] = (result.byStatus[res.status] ?? 0) + 1;
      const fail = (reason: string) =>
        result.failures.push({ request: `${op.method} ${url.slice(0, 300)}`, status: res.status, body: res.text.slice(0, 300), reason });
      if (res.status >= 500) fail("server error");
      else if (res.status >= 400) {
        const p = envelopeProblem(res);
        if (p) fail(p);
      }
      return true;
    }),
    { numRuns: opts.runs, seed: opts.seed, endOnFailure: false },
  );
  return result;
}

/** Rows that a half-applied change would leave behind; each query must return nothing. */
export async function checkInvariants(h: ApiHarness): Promise<Record<string, number>> {
  const sql = h.database.sql;
  const count = async (q: Promise<{ n: number }[]>) => Number((await q)[0]!.n);
  return {
    "hosts without a live owner row": await count(sql`
      select count(*)::int as n from hosts h left join users u on u.id = h.user_id where u.id is null`),
    "users without a password hash": await count(sql`
      select count(*)::int as n from users where password_hash is null or password_hash = ''`),
    "bindings with a missing side": await count(sql`
      select count(*)::int as n from host_egress_bindings b
      left join hosts h on h.id = b.host_id left join egress_ips e on e.id = b.egress_ip_id
      where h.id is null or e.id is null`),
    "hosts bound twice": await count(sql`
      select count(*)::int as n from (select host_id from host_egress_bindings group by host_id having count(*) > 1) x`),
    "egress IPs bound twice": await count(sql`
      select count(*)::int as n from (select egress_ip_id from host_egress_bindings group by egress_ip_id having count(*) > 1) x`),
    "tasks naming a missing host": await count(sql`
      select count(*)::int as n from tasks t left join hosts h on h.id = t.host_id where t.host_id is not null and h.id is null`),
    "ssh keys of a missing user": await count(sql`
      select count(*)::int as n from ssh_keys k left join users u on u.id = k.user_id where u.id is null`),
    "live users with more than one live host": await count(sql`
      select count(*)::int as n from (select user_id from hosts where status <> 'deleting' group by user_id having count(*) > 1) x`),
  };
}
