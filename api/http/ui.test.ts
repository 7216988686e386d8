import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpenAPIHono } from "@hono/zod-openapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isApiPath, loadUiBundle, registerUi, UI_CSP } from "./ui.js";

/** Static serving of the built web UI (api/http/ui.ts), on a bundle written to a temporary folder. */
let dir: string;
let app: OpenAPIHono;
const INDEX = '<!doctype html><html><head><script type="module" src="/assets/index-abc123.js"></script></head><body><div id="root"></div></body></html>';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "ccp-ui-"));
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), INDEX);
  writeFileSync(join(dir, "assets", "index-abc123.js"), "console.log('ui')");
  writeFileSync(join(dir, "assets", "index-def456.css"), "body{}");
  writeFileSync(join(dir, "favicon.svg"), "<svg/>");
  app = new OpenAPIHono();
  app.get("/v1/thing", (c) => c.json({ ok: true }));
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  registerUi(app, loadUiBundle(dir));
  app.notFound((c) => c.json({ error: "no such route", code: "not_found" }, 404));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const get = (path: string, method = "GET") => app.request(path, { method });

describe("web UI serving", () => {
  it("answers / and any client-side route with index.html and the security headers", async () => {
    for (const path of ["/", "/admin", "/admin/users/5d3c2b1a-7e6f-4a1b-9c8d-0e1f2a3b4c5d", "/portal/keys", "/some/page", "/index.html"]) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(await res.text()).toBe(INDEX);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.headers.get("content-security-policy")).toBe(UI_CSP);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(res.headers.get("cache-control")).toBe("no-cache");
    }
    expect(UI_CSP).toContain("default-src 'self'");
    expect(UI_CSP).not.toContain("unsafe-inline");
    // WebAssembly compilation only (the session player), never JavaScript eval.
    expect(UI_CSP).toContain("script-src 'self' 'wasm-unsafe-eval';");
    expect(UI_CSP).not.toMatch(/'unsafe-eval'/);
    expect(UI_CSP).toContain("frame-ancestors 'none'");
  });

  it("serves hashed assets with their content type and a one-year immutable cache", async () => {
    const js = await get("/assets/index-abc123.js");
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(js.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await js.text()).toBe("console.log('ui')");
    const css = await get("/assets/index-def456.css");
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
    const icon = await get("/favicon.svg");
    expect(icon.headers.get("content-type")).toBe("image/svg+xml");
    expect(icon.headers.get("cache-control")).toBe("public, max-age=3600");
  });

  it("answers HEAD without a body", async () => {
    const res = await get("/admin", "HEAD");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(Buffer.byteLength(INDEX)));
    expect(await res.text()).toBe("");
  });

  it("leaves API paths, missing files and other methods to the API's JSON answers", async () => {
    expect(await (await get("/v1/thing")).json()).toEqual({ ok: true });
    expect((await get("/healthz")).status).toBe(200);
    for (const path of ["/v1/nope", "/v1", "/entry/abc123", "/openapi.json", "/readyz", "/assets/missing.js", "/robots.txt", "/assets/../index.html/x.js"]) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      expect(await res.json(), path).toEqual({ error: "no such route", code: "not_found" });
    }
    const post = await app.request("/admin", { method: "POST" });
    expect(post.status).toBe(404);
  });

  it("never reads the file system for a request path (traversal has nothing to reach)", async () => {
    for (const path of ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/%2e%2e/index.html"]) {
      const res = await get(path);
      const text = await res.text();
      expect(text, path).not.toContain("root:");
    }
  });

  it("knows the API's paths", () => {
    for (const p of ["/v1/", "/v1/admin/users", "/entry/x", "/healthz", "/readyz", "/openapi.json", "/docs", "/docs/x.js", "/v1"]) expect(isApiPath(p), p).toBe(true);
    for (const p of ["/", "/admin", "/v1x", "/entryway", "/healthz2", "/docsx"]) expect(isApiPath(p), p).toBe(false);
  });

  it("is absent when nothing was built", () => {
    expect(loadUiBundle(join(dir, "nope"))).toBeNull();
  });
});
