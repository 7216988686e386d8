import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/**
 * The web UI: a React single-page app built into dist/ui, which the API serves at `/`
 * (api/http/ui.ts). Everything is bundled (no CDN: the UI works offline) and nothing is inline,
 * so the page runs under `default-src 'self'`. JSX goes through Vite's own esbuild transform
 * (automatic runtime); no React plugin is needed for a production build.
 */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  esbuild: { jsx: "automatic" },
  build: {
    outDir: fileURLToPath(new URL("../../dist/ui", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    // Files only, never data: URIs or inline code (CSP).
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
  },
  // `npx vite --config api/ui/vite.config.ts`: the sources with hot reload, the API behind
  // /v1 on the same origin (the UI never talks to another origin).
  server: { proxy: { "/v1": process.env.CCP_API_URL ?? "http://127.0.0.1:8080" } },
  clearScreen: false,
});
