import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { json as reply } from "../../api/http/reply.js";
import { defineRoute, registerRoutes, routeContracts } from "../../api/http/route.js";
import { jsonDoc } from "../../api/routes/docs.js";
import { adminHostView, userHostView, userTaskView } from "../../api/live/hub.js";
import { renderTask } from "../../shared/services/tasks/render.js";
import { loadHostStates, loadTaskChanges } from "../../shared/services/live/changes.js";
import { type ApiHarness, ContractViolation, createApiHarness } from "../../shared/test/api-harness.js";
import { liveHostAdminView, liveHostUserView, liveTaskUserView, taskView } from "../../shared/views/index.js";
import { contractViolation, undocumentedKeys } from "../../shared/test/contract.js";

/**
 * The response contract (README "API reference and response contract"). Every integration suite
 * checks each response it receives through the harness; this suite checks the checker (a drifted
 * body is caught), that /openapi.json has no placeholder schemas left, and the /docs page.
 */
let h: ApiHarness;
let admin: string;
beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
});
afterAll(async () => {
  await h.close();
});

const json = "application/json; charset=utf-8";

describe("response contract", () => {
  it("documents a schema for every JSON success response of every route", () => {
    const contracts = routeContracts(h.app);
    expect(contracts.length).toBeGreaterThan(40);
    const missing: string[] = [];
    for (const c of contracts) {
      const ok = Object.entries(c.responses).filter(([s]) => Number(s) < 300);
      if (ok.length === 0) missing.push(`${c.method} ${c.path}: no success response`);
      for (const [s, d] of ok) if ("none" in d && Number(s) !== 204) missing.push(`${c.method} ${c.path} ${s}: no content`);
    }
    expect(missing).toEqual([]);
  });

  it("leaves no placeholder (an object schema with no properties) in /openapi.json", async () => {
    const doc = (await h.request("GET", "/openapi.json")).body as {
      paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>;
    };
    const placeholders: string[] = [];
    const walk = (s: unknown, where: string) => {
      if (!s || typeof s !== "object") return;
      const o = s as Record<string, unknown>;
      // `z.object({}).passthrough()` is `{type: object, properties: {}, additionalProperties: {}}`; a
      // free-form map (`z.record`: metadata, proxy_config) has no `properties` and is documented as one.
      const placeholder = o.type === "object" && !!o.properties && Object.keys(o.properties).length === 0;
      if (placeholder) placeholders.push(where);
      for (const [k, v] of Object.entries(o)) walk(v, `${where}.${k}`);
    };
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        for (const [status, r] of Object.entries(op.responses ?? {})) {
          const schema = r.content?.["application/json"]?.schema;
          if (schema) walk(schema, `${method.toUpperCase()} ${path} ${status}`);
        }
      }
    }
    expect(placeholders).toEqual([]);
    // The host object is described field by field.
    const hosts = doc.paths["/v1/admin/hosts"]!.get!.responses["200"]!.content!["application/json"]!.schema as {
      properties: { hosts: { items: { properties: Record<string, unknown> } } };
    };
    expect(Object.keys(hosts.properties.hosts.items.properties)).toEqual(expect.arrayContaining(["short_id", "image_outdated", "egress"]));
  });

  it("accepts real responses and catches a body that drifted from its schema", async () => {
    const u = await h.createUser();
    const created = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
    expect(created.status, created.text).toBe(202);
    const list = await h.request("GET", "/v1/admin/hosts", { token: admin });
    expect(list.status).toBe(200);
    const base = { method: "GET", path: "/v1/admin/hosts?limit=5", status: 200, contentType: json };
    expect(contractViolation(h.app, { ...base, body: list.body })).toBeNull();

    // A key the schema does not name (a renderer that grew a field the reference lacks).
    const extra = structuredClone(list.body);
    extra.hosts[0].internal_note = "x";
    expect(contractViolation(h.app, { ...base, body: extra })).toMatch(/undocumented keys hosts\[0\]\.internal_note/);
    // A documented key gone, and a value of the wrong type.
    const missing = structuredClone(list.body);
    delete missing.hosts[0].short_id;
    expect(contractViolation(h.app, { ...base, body: missing })).toMatch(/hosts\.0\.short_id/);
    const wrong = structuredClone(list.body);
    wrong.hosts[0].status = "exploded";
    expect(contractViolation(h.app, { ...base, body: wrong })).toMatch(/does not match/);
    // A status the route does not document, and an error that is not the envelope.
    expect(contractViolation(h.app, { ...base, status: 201, body: list.body })).toMatch(/status not documented/);
    expect(contractViolation(h.app, { ...base, status: 418, body: { oops: true } })).toMatch(/does not match/);
    // The most literal template wins: /v1/admin/hosts/outdated is not the host detail.
    const detail = await h.request("GET", `/v1/admin/hosts/${created.body.host.id}`, { token: admin });
    expect(detail.status).toBe(200);
    expect(contractViolation(h.app, { ...base, path: `/v1/admin/hosts/${created.body.host.id}`, body: detail.body })).toBeNull();
    expect(contractViolation(h.app, { ...base, path: `/v1/admin/hosts/${created.body.host.id}`, body: list.body })).not.toBeNull();
  });

  it("makes the harness fail loudly on a response that breaks the contract", async () => {
    // A fresh app (same database) with one more route that answers outside its documentation.
    const other = await h.withConfig({});
    const probe = defineRoute({
      method: "get",
      path: "/v1/contract-probe/{name}",
      access: "public",
      summary: "probe",
      tags: ["test"],
      responses: { 200: jsonDoc("Probe", z.object({ name: z.string() })) },
      handler: async ({ c, params }) => reply(c, params.name === "drift" ? 200 : 201, { name: params.name, extra: 1 }),
    });
    registerRoutes(other.app, other.deps, [probe]);
    await expect(other.request("GET", "/v1/contract-probe/drift")).rejects.toThrow(/undocumented keys extra/);
    await expect(other.request("GET", "/v1/contract-probe/created")).rejects.toThrow(ContractViolation);
    await expect(other.request("GET", "/v1/contract-probe/created")).rejects.toThrow(/201: status not documented/);
  });
});

describe("live update payloads", () => {
  it("match the views the UI reads them with (host and task, admin and user streams)", async () => {
    const u = await h.createUser();
    const created = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
    expect(created.status, created.text).toBe(202);
    const host = (await loadHostStates(h.database.db)).find((x) => x.id === created.body.host.id)!;
    const task = (await loadTaskChanges(h.database.db, [])).find((t) => t.id === created.body.task_id)!;
    const cases: [z.ZodType, unknown][] = [
      [liveHostAdminView, adminHostView(host)],
      [liveHostUserView, userHostView(host)],
      [taskView, renderTask(task)],
      [liveTaskUserView, userTaskView(task)],
    ];
    for (const [schema, payload] of cases) {
      const parsed = schema.safeParse(payload);
      expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
      expect(undocumentedKeys(payload, parsed.data)).toEqual([]);
    }
  });
});

describe("/docs", () => {
  it("serves the interactive reference with same-origin assets only, under the UI's CSP", async () => {
    const page = await h.request("GET", "/docs");
    expect(page.status, page.text).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    // No inline script or style: every <script> has a src, there is no <style>, no style="".
    expect(page.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
    expect(page.text).not.toMatch(/<style|\sstyle=/i);
    const refs = [...page.text.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThanOrEqual(4);
    for (const ref of refs) {
      expect(ref, "same-origin path").toMatch(/^\/[^/]/);
      const asset = await h.request("GET", ref);
      expect(asset.status, ref).toBe(200);
      // The library's script and stylesheet are the real thing, not a stub.
      if (/swagger-ui/.test(ref)) expect(asset.text.length, ref).toBeGreaterThan(10_000);
      expect(asset.headers.get("x-content-type-options")).toBe("nosniff");
    }
    const init = await h.request("GET", "/docs/init.js");
    expect(init.text).toContain('"/openapi.json"');
    expect(init.text).toContain("validatorUrl: null");
    expect((await h.request("GET", "/docs/nope.js")).status).toBe(404);
  });
});
