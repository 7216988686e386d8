import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_UI_DIR } from "../../api/http/ui.js";
import { projectRoot } from "../../shared/paths.js";
import { type ApiHarness, createApiHarness, type ListeningApi, TEST_ADMIN_PASSWORD } from "../../shared/test/api-harness.js";
import { freePort } from "../../shared/test/processes.js";
import { inHost, stopDesktop, waitForPort6901 } from "../../shared/test/vnc.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";

/**
 * Issue 10 §1, the regression test in a real browser. The reproduction it guards against: a
 * tenant stops websockify, listens on :6901 with a few lines of Python that log request headers,
 * and waits for the admin to open the desktop — the next request arrived with
 * `Referer: …/vnc/?token=eyJ…`, and that token read /v1/admin/dashboard/stats with 200.
 *
 * Here the tenant's server (test/docker/fixtures/vnc-hostile.py) records every request and serves
 * a page that reads its own address, cookies and referrer, calls admin and user API routes with
 * credentials, and registers a service worker. The admin opens the desktop from the dashboard in
 * Debian's Chromium: nothing the server or the page obtains is a credential, and every API call fails.
 */
const CHROMIUM = "/usr/bin/chromium";
const HOSTILE = join(projectRoot, "test", "docker", "fixtures", "vnc-hostile.py");
const JWT = /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/;

let h: ApiHarness;
let w: WorkerHarness;
let server: ListeningApi;
let baseUrl: string;
let context: BrowserContext;
let profile: string;
let hostId: string;
let shortId: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run npm run setup (it installs Debian's chromium)`);
  if (!existsSync(join(DEFAULT_UI_DIR, "index.html"))) {
    execFileSync("npm", ["run", "build:ui"], { cwd: projectRoot, stdio: "pipe", timeout: 300_000 });
  }
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  h = await createApiHarness({ PUBLIC_BASE_URL: baseUrl });
  w = await startTestWorker(h);
  server = await h.listen(port);
  const admin = await h.adminToken();
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  hostId = res.body.host.id;
  shortId = res.body.host.short_id;
  expect((await waitForTask(h, res.body.task_id, 180_000)).status).toBe("succeeded");

  // The tenant's move: the desktop goes, their own server takes :6901 (as the tenant's user).
  await waitForPort6901(hostId);
  await stopDesktop(hostId);
  // Not /tmp: it is a tmpfs in a host, and `docker cp` writes under the mount, unseen.
  docker(["cp", HOSTILE, `ccp-host-${hostId}:/opt/vnc-hostile.py`]);
  docker(["exec", "-d", "-u", "workspace", `ccp-host-${hostId}`, "python3", "/opt/vnc-hostile.py", "6901"]);
  await waitForPort6901(hostId);
  inHost(hostId, ": > /tmp/vnc-hostile.log");

  profile = mkdtempSync(join(tmpdir(), "ccp-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}, 300_000);

afterAll(async () => {
  await context?.close();
  await server?.close();
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

interface Captured {
  method: string;
  path: string;
  headers: [string, string][];
  body: string;
}

describe("a hostile desktop server gets no credential", () => {
  it("the admin opens the desktop: the server and its page obtain nothing, every API call from the page fails", { timeout: 180_000 }, async () => {
    const page = await context.newPage();
    await page.goto(`${baseUrl}/`);
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill(TEST_ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Dashboard", level: 1 }).waitFor();
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Hosts", exact: true }).click();
    await page.getByRole("link", { name: shortId }).click();
    await page.getByRole("button", { name: "Open desktop" }).waitFor();

    const [popup] = await Promise.all([context.waitForEvent("page"), page.getByRole("button", { name: "Open desktop" }).click()]);
    // The hostile page writes its findings into #report once its attempts are done.
    await popup.waitForFunction("document.getElementById('report') && document.getElementById('report').textContent !== 'pending'", undefined, {
      timeout: 60_000,
    });
    const report = JSON.parse((await popup.textContent("#report")) ?? "{}") as Record<string, unknown>;

    // What the page could see of itself: no ticket, no token, no cookie, no referrer, no opener.
    expect(String(report.location)).toBe(`${baseUrl}/v1/admin/hosts/${hostId}/vnc/`);
    expect(report.cookie).toBe("");
    expect(report.referrer).toBe("");
    expect(report.opener).toBe(true);
    expect(report.storage).toEqual([0, 0]);
    // Every API call with the browser's credentials fails: API routes never accept the desktop cookie.
    expect(report.admin_users).toBe(401);
    expect(report.admin_stats).toBe(401);
    expect(report.user_hosts).toBe(401);
    expect(report.logout_all).toBe(401);
    expect(String(report.service_worker)).toMatch(/^refused/);

    // What the server received: no Authorization, no Cookie, no Referer, no JWT or ticket anywhere.
    const log = inHost(hostId, "cat /tmp/vnc-hostile.log");
    const seen = log.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Captured);
    expect(seen.map((r) => `${r.method} ${r.path}`)).toContain("GET /");
    expect(seen.map((r) => `${r.method} ${r.path}`)).toContain("POST /report");
    expect(seen.some((r) => r.path.includes("sw.js")), "the service worker script never reached the host").toBe(false);
    for (const r of seen) {
      const names = r.headers.map(([k]) => k.toLowerCase());
      expect(names, r.path).not.toContain("authorization");
      expect(names, r.path).not.toContain("cookie");
      expect(names, r.path).not.toContain("referer");
      expect(r.path).not.toMatch(/ticket|token/);
      expect(JSON.stringify(r)).not.toMatch(JWT);
    }
    // The admin's own session is untouched: the dashboard still works.
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Dashboard", exact: true }).click();
    await page.getByRole("heading", { name: "Dashboard", level: 1 }).waitFor();
    expect(await page.getByText("Your session has ended").count()).toBe(0);
  });
});
