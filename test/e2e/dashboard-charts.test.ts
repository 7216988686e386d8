import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type ConsoleMessage, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_UI_DIR } from "../../api/http/ui.js";
import { projectRoot } from "../../shared/paths.js";
import { type ApiHarness, createApiHarness, type ListeningApi, TEST_ADMIN_PASSWORD } from "../../shared/test/api-harness.js";
import { insertEgressRow, insertHostRow, insertTaskRow } from "../../shared/test/rows.js";

/**
 * The dashboard's charts in Debian's Chromium (as test/e2e/ui.test.ts, without Docker: rows are
 * inserted into this file's own database): every chart draws at desktop and phone sizes under
 * the UI's Content-Security-Policy with no console error, a host change arriving over SSE
 * redraws the hosts chart, and a chart's link opens the filtered list behind it. Screenshots go
 * to test-artifacts/ui/dashboard-{desktop,phone}.png (git-ignored, like the other UI shots).
 */
const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(projectRoot, "test-artifacts", "ui");
const CHARTS = ["tasks", "task-kinds", "hosts", "sessions", "engines", "pool", "attestations"];
const DEADLINE = 20_000;

let h: ApiHarness;
let server: ListeningApi;
let context: BrowserContext;
let profile: string;

const HOUR = 3_600_000;
/** Inside the 24 h window whatever the time of day: it always covers at least the last 23 hours. */
const hoursAgo = (n: number) => new Date(Date.now() - n * HOUR);

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run npm run setup (it installs Debian's chromium)`);
  if (!existsSync(join(DEFAULT_UI_DIR, "index.html"))) throw new Error("the web UI is not built: run npm run build:ui");
  mkdirSync(SHOTS, { recursive: true });
  h = await createApiHarness();
  const sql = h.database.sql;

  // Tasks over the last hours: 5 succeeded, 2 failed, 1 canceled.
  const tasks: [string, "succeeded" | "failed" | "canceled", number, number][] = [
    ["host.create", "succeeded", 20, 42_000],
    ["host.start", "succeeded", 15, 6_000],
    ["host.start", "succeeded", 9, 8_000],
    ["host.stop", "succeeded", 4, 3_000],
    ["egress.test", "succeeded", 2, 1_500],
    ["host.start", "failed", 6, 30_000],
    ["host.rebuild", "failed", 1, 55_000],
    ["host.create", "canceled", 3, 2_000],
  ];
  for (const [kind, status, ago, runMs] of tasks) {
    const finished = hoursAgo(ago);
    await insertTaskRow(sql, { kind, status, createdAt: new Date(finished.getTime() - runMs - 1000), startedAt: new Date(finished.getTime() - runMs), finishedAt: finished });
  }
  await sql`insert into engines (id, endpoint, max_hosts) values ('edge-a', 'unix:///run/edge-a.sock', 10)`;
  await sql`insert into engines (id, endpoint, state) values ('edge-b', 'unix:///run/edge-b.sock', 'cordoned')`;
  const hosts = [];
  for (const status of ["running", "running", "running", "stopped", "failed"] as const) hosts.push(await insertHostRow(sql, { status }));
  await sql`update hosts set engine_id = 'edge-a' where id in ${sql(hosts.slice(0, 3).map((x) => x.id))}`;
  await sql`update hosts set engine_id = 'edge-b' where id in ${sql(hosts.slice(3).map((x) => x.id))}`;
  for (const [i, [engine, state]] of ([["edge-a", "ready"], ["edge-a", "warming"], ["edge-b", "ready"]] as const).entries()) {
    await sql`insert into host_pool (id, engine_id, state, short_id, memory_limit_mb, cpu_limit, pids_limit, timezone, home_disk_mb,
        host_key_public, host_key_private_enc, internal_key_public, internal_key_private_enc)
      values (gen_random_uuid(), ${engine}, ${state}, ${`uipl0${i}`}, 4096, 2, 1024, 'UTC', 0, 'k', 'x', 'k', 'x')`;
  }
  const owner = hosts[0]!;
  for (const [kind, ago] of [["ssh", 1], ["ssh", 2], ["ssh", 2], ["desktop", 3], ["ssh", 10]] as const) {
    await sql`insert into sessions (kind, host_id, user_id, login, started_at) values (${kind}, ${owner.id}, ${owner.userId}, 'fixture', ${hoursAgo(ago).toISOString()}::timestamptz)`;
  }
  const egressOk = await insertEgressRow(sql);
  const egressBad = await insertEgressRow(sql, { health: "failing" });
  for (const [egress, verdict, ago] of [[egressOk, "passed", 3], [egressOk, "passed", 2], [egressBad, "passed", 5], [egressBad, "failed", 1]] as const) {
    await sql`insert into egress_attestations (host_id, user_id, egress_ip_id, engine_id, attested_at, verdict, error_code, expected_ip, duration_ms)
      values (${owner.id}, ${owner.userId}, ${egress}, 'edge-a', ${hoursAgo(ago).toISOString()}::timestamptz, ${verdict}, ${verdict === "failed" ? "dns_leak" : null}, '198.51.100.9', 40)`;
  }

  server = await h.listen();
  profile = mkdtempSync(join(tmpdir(), "ccp-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
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

/** Console errors, page errors, failed same-origin requests and CSP violations (reported by the page itself). */
async function watch(page: Page): Promise<() => Promise<string[]>> {
  const problems: string[] = [];
  page.on("console", (m: ConsoleMessage) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e: Error) => problems.push(`pageerror: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
  });
  // Injected by the browser itself (CDP), not as page content: the CSP does not apply to it.
  await page.addInitScript({ content: JS.watchCsp });
  return async () => [...problems, ...(await page.evaluate<string[]>(JS.cspViolations))];
}

async function openDashboard(page: Page): Promise<void> {
  await page.goto(`${server.url}/`);
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill(TEST_ADMIN_PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Dashboard" }).waitFor({ timeout: DEADLINE });
  // Every chart has drawn at least once (ChartCanvas counts its draws in data-rendered).
  for (const name of CHARTS) await page.locator(`canvas[data-chart="${name}"][data-rendered]`).waitFor({ timeout: DEADLINE });
}

/** Page scripts as strings: this file is type-checked without the DOM library (as test/e2e/ui.test.ts). */
const JS = {
  watchCsp: `window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`,
  cspViolations: "window.__csp ?? []",
  scrollWidth: "document.documentElement.scrollWidth",
  inlineStyle: `document.body.setAttribute("style", "outline: 1px solid red")`,
};

const label = (page: Page, name: string) => page.locator(`canvas[data-chart="${name}"]`).getAttribute("aria-label");

describe("dashboard charts", () => {
  it("draws every chart at desktop size, follows a host change live, and links to the filtered list", async () => {
    const page = await context.newPage();
    const problems = await watch(page);
    await openDashboard(page);

    expect(await label(page, "tasks")).toContain("5 succeeded, 2 failed, 1 canceled");
    expect(await label(page, "hosts")).toContain("3 running, 0 stopping, 1 stopped");
    expect(await label(page, "sessions")).toContain("4 SSH, 1 desktop");
    expect(await label(page, "engines")).toContain("edge-a 3 of 10, edge-b 2 of unlimited");
    expect(await label(page, "attestations")).toMatch(/1 passed, 1 failed/);
    // Each chart is sized by its box, not the canvas default (300×150).
    const box = await page.locator('canvas[data-chart="tasks"]').boundingBox();
    expect(box!.width).toBeGreaterThan(350);
    await page.screenshot({ path: join(SHOTS, "dashboard-desktop.png"), fullPage: true });

    // Live: a host that appears is announced over SSE; the hosts chart redraws with it.
    await insertHostRow(h.database.sql, { status: "failed" });
    await expect.poll(() => label(page, "hosts"), { timeout: DEADLINE }).toContain("2 failed");

    // The outcome link under the tasks chart opens the tasks list with that filter.
    await page.getByRole("region", { name: "Tasks ended per hour" }).getByRole("link", { name: "failed: 2", exact: true }).click();
    await page.getByRole("heading", { name: "Tasks" }).waitFor({ timeout: DEADLINE });
    expect(new URL(page.url()).pathname + new URL(page.url()).search).toBe("/admin/tasks?status=failed");
    expect(await page.getByLabel("Status").inputValue()).toBe("failed");
    await expect.poll(() => page.locator("tbody tr").count(), { timeout: DEADLINE }).toBe(2);

    expect(await problems()).toEqual([]);
    await page.close();
  });

  it("fits a phone screen (390×844) with every chart drawn", async () => {
    const page = await context.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    const problems = await watch(page);
    await openDashboard(page);
    // One column, no sideways scrolling.
    expect(await page.evaluate<number>(JS.scrollWidth)).toBeLessThanOrEqual(390);
    const boxes = await Promise.all(CHARTS.map((n) => page.locator(`canvas[data-chart="${n}"]`).boundingBox()));
    for (const b of boxes) {
      expect(b!.width).toBeGreaterThan(250);
      expect(b!.x + b!.width).toBeLessThanOrEqual(390);
    }
    // The 7 d window: day buckets, same totals (every row is within the last day).
    await page.getByRole("button", { name: "7d" }).click();
    await expect.poll(() => label(page, "tasks"), { timeout: DEADLINE }).toContain("per day");
    expect(await label(page, "tasks")).toContain("5 succeeded, 2 failed, 1 canceled");
    await page.getByRole("button", { name: "24h" }).click();
    await expect.poll(() => label(page, "tasks"), { timeout: DEADLINE }).toContain("per hour");
    await page.screenshot({ path: join(SHOTS, "dashboard-phone.png"), fullPage: true });
    expect(await problems()).toEqual([]);
    // The link under the hosts chart opens the hosts list by status.
    await page.getByRole("region", { name: "Hosts by status (now)" }).getByRole("link", { name: "running: 3", exact: true }).click();
    await page.getByRole("heading", { name: "Hosts", level: 1 }).waitFor({ timeout: DEADLINE });
    expect(new URL(page.url()).search).toBe("?status=running");
    await expect.poll(() => page.locator("tbody tr").count(), { timeout: DEADLINE }).toBe(3);
    expect(await problems()).toEqual([]);
    // The watcher itself sees a violation: a style attribute set from script is refused by the CSP.
    await page.evaluate(JS.inlineStyle);
    await expect.poll(async () => (await problems()).some((p) => p.includes("style-src")), { timeout: DEADLINE }).toBe(true);
    await page.close();
  });
});
