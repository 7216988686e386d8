import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { projectRoot } from "../../shared/paths.js";
import { setRouteTemplate } from "../middleware/request-context.js";

/**
 * The web UI (api/ui, built by `npm run build:ui` into dist/ui) served by the API.
 *
 * Paths outside /v1/, /entry/, /healthz, /readyz, /openapi.json and /docs belong to the UI
 * (docs/api.md#routing): a file of the bundle is served as it is, any other path gets index.html
 * so that client-side routes survive a reload. The whole bundle (a few hundred KiB) is read into
 * memory once at start: requests are answered from a map, so no request path ever reaches the
 * file system (no traversal to guard against) and a rebuild under a running process cannot serve
 * half-written files.
 */

export const DEFAULT_UI_DIR = join(projectRoot, "dist", "ui");

interface UiFile {
  body: Uint8Array;
  type: string;
  /** Content-hashed file names (Vite's assets/) never change: cache them for a year. */
  immutable: boolean;
}

export interface UiBundle {
  dir: string;
  index: Uint8Array;
  files: Map<string, UiFile>;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".woff2": "font/woff2",
  ".woff": "font/woff",
  ".txt": "text/plain; charset=utf-8",
  ".webmanifest": "application/manifest+json",
};

export const contentTypeOf = (name: string) => TYPES[extname(name).toLowerCase()] ?? "application/octet-stream";

/**
 * The UI's Content-Security-Policy: everything from this origin only, no inline script or style,
 * no plugins, not frameable. The built bundle has no inline code (Vite emits external files).
 * `'wasm-unsafe-eval'` lets the bundled session player (asciinema-player: its terminal emulator
 * is WebAssembly shipped inside its own script) compile WebAssembly; it allows no JavaScript
 * eval, no inline script and no other origin (docs/sessions.md#player).
 */
export const UI_CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": UI_CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
};

/** Load a built bundle, or null when there is none (the API then answers UI paths with the JSON 404). */
export function loadUiBundle(dir: string = DEFAULT_UI_DIR): UiBundle | null {
  const indexPath = join(dir, "index.html");
  if (!existsSync(indexPath)) return null;
  const files = new Map<string, UiFile>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      const st = statSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile()) {
        const rel = relative(dir, full).split(sep).join("/");
        files.set(`/${rel}`, {
          body: readFileSync(full),
          type: contentTypeOf(name),
          immutable: rel.startsWith("assets/"),
        });
      }
    }
  };
  walk(dir);
  return { dir, index: readFileSync(indexPath), files };
}

/** Paths the API owns (docs/api.md#routing); never answered with the UI. */
export function isApiPath(path: string): boolean {
  return (
    path === "/v1" ||
    path.startsWith("/v1/") ||
    path === "/entry" ||
    path.startsWith("/entry/") ||
    path === "/healthz" ||
    path === "/readyz" ||
    path === "/openapi.json" ||
    path === "/docs" ||
    path.startsWith("/docs/") ||
    path === "/metrics"
  );
}

/**
 * GET/HEAD for UI paths. Registered after every API route, so that API routes, their 405s and the
 * JSON 404 for unknown /v1 paths are untouched: for API paths (and files the bundle lacks) this
 * falls through to the app's notFound handler.
 */
export function registerUi(app: OpenAPIHono, ui: UiBundle | null): void {
  if (!ui) return;
  app.on(["GET", "HEAD"], "*", async (c, next) => {
    const path = new URL(c.req.url).pathname;
    if (isApiPath(path)) return next();
    const isIndex = path === "/" || path === "/index.html";
    const file = isIndex ? undefined : ui.files.get(path);
    let body: Uint8Array;
    let type: string;
    let cache: string;
    if (file) {
      body = file.body;
      type = file.type;
      cache = file.immutable ? "public, max-age=31536000, immutable" : "public, max-age=3600";
    } else {
      // A missing file (a name with an extension, or anything under /assets/) is a 404, not the
      // page: serving HTML where a script or image was asked for only hides the broken link.
      const last = path.slice(path.lastIndexOf("/") + 1);
      if (!isIndex && (path.startsWith("/assets/") || last.includes("."))) return next();
      body = ui.index;
      type = "text/html; charset=utf-8";
      // The page names the current hashed bundle: always revalidate it.
      cache = "no-cache";
    }
    setRouteTemplate(c, "ui"); // one series for the whole web UI, whatever the path
    const headers = { ...SECURITY_HEADERS, "content-type": type, "cache-control": cache, "content-length": String(body.byteLength) };
    return new Response(c.req.method === "HEAD" ? null : (body as Uint8Array<ArrayBuffer>), { status: 200, headers });
  });
}
