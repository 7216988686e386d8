import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type ConsoleMessage } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { projectRoot } from "../../shared/paths.js";
import { type ApiHarness, createApiHarness, type ListeningApi } from "../../shared/test/api-harness.js";

/**
 * /docs in a real browser (Debian's Chromium, as test/e2e/ui.test.ts): the reference renders the
 * routes of /openapi.json under the UI's Content-Security-Policy, with no console error (a CSP
 * violation or a blocked request is one) and no request to another origin.
 */
const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(projectRoot, "test-artifacts", "ui");

let h: ApiHarness;
let server: ListeningApi;
let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run npm run setup (it installs Debian's chromium)`);
  mkdirSync(SHOTS, { recursive: true });
  h = await createApiHarness();
  server = await h.listen();
  profile = mkdtempSync(join(tmpdir(), "ccp-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  await server?.close();
  await h?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

it("renders the route list offline under the CSP", async () => {
  const page = await context.newPage();
  const problems: string[] = [];
  const foreign: string[] = [];
  page.on("console", (m: ConsoleMessage) => {
    if (m.type() === "error") problems.push(m.text());
  });
  page.on("pageerror", (e: Error) => problems.push(`pageerror: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
  });
  page.on("request", (r) => {
    if (!r.url().startsWith(server.url) && !r.url().startsWith("data:")) foreign.push(r.url());
  });
  await page.goto(`${server.url}/docs`);
  // Swagger UI lists every operation with its path: wait for a few known ones.
  for (const path of ["/v1/admin/hosts", "/v1/auth/login", "/v1/user/hosts/{hostID}"]) {
    await page.locator(`[data-path="${path}"]`).first().waitFor({ timeout: 30_000 });
  }
  // Open one operation: its response schema is shown field by field.
  await page.locator('[data-path="/v1/admin/hosts"]').first().click();
  await page.getByText("image_outdated").first().waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(SHOTS, "api-docs.png") });
  expect(problems).toEqual([]);
  expect(foreign).toEqual([]);
});
