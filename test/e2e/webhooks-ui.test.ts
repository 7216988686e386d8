import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type ConsoleMessage, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_UI_DIR } from "../../api/http/ui.js";
import { projectRoot } from "../../shared/paths.js";
import { type ApiHarness, createApiHarness, type ListeningApi, TEST_ADMIN_PASSWORD } from "../../shared/test/api-harness.js";

/**
 * The admin Webhooks page and the events page's NDJSON export in Debian's Chromium, without Docker
 * and without a worker (deliveries stay pending: test/integration/webhooks.test.ts covers them):
 * create shows the signing secret once, disable/enable, send a test event into the delivery log,
 * and "Export NDJSON" downloads the filtered events, one JSON object per line, under the UI's CSP.
 */
const CHROMIUM = "/usr/bin/chromium";
/** test-artifacts/ui/webhooks.png (git-ignored, like the other UI screenshots). */
const SHOTS = join(projectRoot, "test-artifacts", "ui");
const DEADLINE = 20_000;

let h: ApiHarness;
let server: ListeningApi;
let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run npm run setup (it installs Debian's chromium)`);
  if (!existsSync(join(DEFAULT_UI_DIR, "index.html"))) throw new Error("the web UI is not built: run npm run build:ui");
  h = await createApiHarness();
  server = await h.listen();
  profile = mkdtempSync(join(tmpdir(), "ccp-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 800 },
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  await server?.close();
  await h?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Page scripts as strings: this file is type-checked without the DOM library. */
const JS = {
  watchCsp: `window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`,
  cspViolations: "window.__csp ?? []",
  bodyText: "document.body.innerText",
};

async function watch(page: Page): Promise<() => Promise<string[]>> {
  const problems: string[] = [];
  page.on("console", (m: ConsoleMessage) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e: Error) => problems.push(`pageerror: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
  });
  await page.addInitScript({ content: JS.watchCsp });
  return async () => [...problems, ...(await page.evaluate<string[]>(JS.cspViolations))];
}

describe("webhooks page", () => {
  it("creates a webhook showing its secret once, disables and enables it, and sends a test event into the delivery log", async () => {
    const page = await context.newPage();
    const problems = await watch(page);
    await page.goto(`${server.url}/`);
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill(TEST_ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Dashboard" }).waitFor({ timeout: DEADLINE });

    await page.getByRole("link", { name: "Webhooks" }).click();
    await page.getByRole("heading", { name: "Webhooks", level: 1 }).waitFor({ timeout: DEADLINE });
    await page.getByRole("button", { name: "Create webhook" }).click();
    await page.getByLabel("URL").fill("http://127.0.0.1:9/ui-hook");
    await page.getByLabel("Event types").fill("egress.*\nhost.created");
    await page.getByLabel("Description (optional)").fill("ui sink");
    await page.getByRole("dialog").getByRole("button", { name: "Create webhook" }).click();
    const secretField = page.getByRole("textbox", { name: "Signing secret" });
    await secretField.waitFor({ timeout: DEADLINE });
    const secret = await secretField.inputValue();
    expect(secret).toMatch(/^whsec_/);
    await page.getByRole("button", { name: "Done" }).click();
    const row = page.locator("tbody tr", { hasText: "http://127.0.0.1:9/ui-hook" });
    await row.waitFor({ timeout: DEADLINE });
    expect(await row.innerText()).toContain("egress.*, host.created");
    // Shown once: nowhere on the page after the dialog closed, nor after a reload of the list.
    await page.getByRole("button", { name: "Refresh" }).click();
    expect(await page.evaluate<string>(JS.bodyText)).not.toContain(secret);

    await row.getByRole("button", { name: "Disable" }).click();
    await row.getByRole("button", { name: "Enable" }).waitFor({ timeout: DEADLINE });
    expect(await row.innerText()).toContain("disabled");
    await row.getByRole("button", { name: "Enable" }).click();
    await row.getByRole("button", { name: "Disable" }).waitFor({ timeout: DEADLINE });

    await row.getByRole("button", { name: "Send test event" }).click();
    const log = page.getByRole("region", { name: "Delivery log" });
    await log.locator("tbody tr", { hasText: "webhook.tested" }).waitFor({ timeout: DEADLINE });
    expect(await log.innerText()).toContain("pending");
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, "webhooks.png"), fullPage: true });
    const api = await h.request("GET", "/v1/admin/webhooks", { token: await h.adminToken() });
    expect(api.body.webhooks).toEqual([expect.objectContaining({ url: "http://127.0.0.1:9/ui-hook", enabled: true, description: "ui sink" })]);
    expect(await problems()).toEqual([]);
    await page.close();
  });

  it("exports the filtered events as NDJSON from the events page", async () => {
    // Rows of its own: a webhook created, updated and tested through the API.
    const token = await h.adminToken();
    const created = await h.request("POST", "/v1/admin/webhooks", { token, body: { url: "http://127.0.0.1:9/export", event_types: ["*"] } });
    expect(created.status, created.text).toBe(201);
    const id = created.body.webhook.id as string;
    expect((await h.request("PATCH", `/v1/admin/webhooks/${id}`, { token, body: { description: "export" } })).status).toBe(200);
    expect((await h.request("POST", `/v1/admin/webhooks/${id}/test`, { token })).status).toBe(202);
    const viaApi = await h.request("GET", "/v1/admin/events/export?type=webhook.*", { token });
    const page = await context.newPage();
    const problems = await watch(page);
    // The filtered list's URL; the login form comes first (the token lives in memory only).
    await page.goto(`${server.url}/admin/events?type=webhook.*`);
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill(TEST_ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Events" }).waitFor({ timeout: DEADLINE });
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: DEADLINE }), page.getByRole("button", { name: "Export NDJSON" }).click()]);
    expect(download.suggestedFilename()).toMatch(/^events-.*\.ndjson$/);
    const text = readFileSync((await download.path())!, "utf8");
    const lines = text.trimEnd().split("\n").map((l) => JSON.parse(l) as { type: string });
    expect(text).toBe(viaApi.text);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.every((e) => e.type.startsWith("webhook."))).toBe(true);
    expect(lines.map((e) => e.type)).toEqual(expect.arrayContaining(["webhook.created", "webhook.updated", "webhook.tested"]));
    expect(await problems()).toEqual([]);
    await page.close();
  });
});
