import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { setRouteTemplate } from "../middleware/request-context.js";
import { UI_CSP } from "./ui.js";

/**
 * GET /docs: the interactive API reference (README "API reference and response contract"),
 * Swagger UI rendering /openapi.json. Everything is served from this origin — the library's
 * files from node_modules/swagger-ui-dist, read once at start — and the page has no inline code,
 * so it runs offline and under the UI's Content-Security-Policy.
 */

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cloud-cli-proxy API reference</title>
<link rel="icon" type="image/png" href="/docs/favicon.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

/** No validator badge (it would call validator.swagger.io), no "Try it out" defaults changed. */
const INIT = `window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
});
`;

interface Asset {
  body: Uint8Array;
  type: string;
}

/** The package whose files are served (found by name, not imported: nothing of it runs in Node). */
const ASSETS = { target: "swagger-ui-dist" } as const;

/** The page and its assets, or null when swagger-ui-dist is not installed (then /docs is not served). */
export function loadDocsAssets(): Map<string, Asset> | null {
  let dir: string;
  try {
    dir = dirname(createRequire(import.meta.url).resolve(`${ASSETS.target}/package.json`));
  } catch {
    return null;
  }
  const lib = (name: string, type: string): Asset | null => {
    const p = join(dir, name);
    return existsSync(p) ? { body: readFileSync(p), type } : null;
  };
  const css = lib("swagger-ui.css", "text/css; charset=utf-8");
  const js = lib("swagger-ui-bundle.js", "text/javascript; charset=utf-8");
  const icon = lib("favicon-32x32.png", "image/png");
  if (!css || !js) return null;
  const enc = new TextEncoder();
  return new Map([
    ["/docs", { body: enc.encode(PAGE), type: "text/html; charset=utf-8" }],
    ["/docs/swagger-ui.css", css],
    ["/docs/swagger-ui-bundle.js", js],
    ["/docs/init.js", { body: enc.encode(INIT), type: "text/javascript; charset=utf-8" }],
    ...(icon ? [["/docs/favicon.png", icon] as const] : []),
  ]);
}

const HEADERS: Record<string, string> = {
  "content-security-policy": UI_CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cache-control": "no-cache",
};

let cached: Map<string, Asset> | null | undefined;

/** GET/HEAD /docs and its assets. Registered before the UI; any other /docs/… path is the JSON 404. */
export function registerDocsPage(app: OpenAPIHono): void {
  cached ??= loadDocsAssets();
  const assets = cached;
  if (!assets) return;
  const serve = (c: Context) => {
    const path = new URL(c.req.url).pathname;
    const asset = assets.get(path);
    if (!asset) return c.notFound();
    setRouteTemplate(c, "/docs");
    const headers = { ...HEADERS, "content-type": asset.type, "content-length": String(asset.body.byteLength) };
    return new Response(c.req.method === "HEAD" ? null : (asset.body as Uint8Array<ArrayBuffer>), { status: 200, headers });
  };
  app.on(["GET", "HEAD"], "/docs", serve);
  app.on(["GET", "HEAD"], "/docs/:file", serve);
}
