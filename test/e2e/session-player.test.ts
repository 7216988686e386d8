import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type ConsoleMessage } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { projectRoot } from "../../shared/paths.js";
import { type ApiHarness, createApiHarness, type ListeningApi } from "../../shared/test/api-harness.js";
import { insertHostRow } from "../../shared/test/rows.js";

/**
 * The sessions page and its player in a real browser (Debian's Chromium, as test/e2e/ui.test.ts):
 * a user logs in, opens their Sessions page, opens a recorded session and plays it in the bundled
 * asciinema-player under the UI's Content-Security-Policy, with no console error (a CSP violation
 * is one: the player's terminal is WebAssembly, allowed by `'wasm-unsafe-eval'` only) and no
 * request to another origin (docs/sessions.md#player).
 */
const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(projectRoot, "test-artifacts", "ui");

let h: ApiHarness;
let server: ListeningApi;
let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run npm run setup (it installs Debian's chromium)`);
  if (!existsSync(join(projectRoot, "dist", "ui", "index.html"))) throw new Error("the web UI is not built: npm run build:ui");
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

it("lists the user's sessions and replays a recording under the CSP", { timeout: 120_000 }, async () => {
  const user = await h.createUser();
  const host = await insertHostRow(h.database.sql, { userId: user.id });
  const [row] = await h.database.sql<{ id: string }[]>`
    insert into sessions (kind, host_id, user_id, login, method, source_ip, ended_at, bytes_in, bytes_out, end_reason, recording, recording_bytes)
    values ('ssh', ${host.id}, ${user.id}, ${host.shortId}, 'publickey', '192.0.2.44', now(), 12, 345, 'client_closed', 'input', 200)
    returning id`;
  const cast = [
    '{"version":2,"width":80,"height":24,"timestamp":1767323045,"env":{"TERM":"xterm-256color"}}',
    '[0.05,"o","$ "]',
    '[0.10,"i","echo replay-$((40+2))-marker\\r"]',
    '[0.15,"o","echo replay-$((40+2))-marker\\r\\nreplay-42-marker\\r\\n$ "]',
  ].join("\n");
  await h.database.sql`insert into session_recording_chunks (session_id, seq, data) values (${row!.id}, 0, ${`${cast}\n`})`;

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
    if (!r.url().startsWith(server.url) && !r.url().startsWith("data:") && !r.url().startsWith("blob:")) foreign.push(r.url());
  });
  await page.goto(`${server.url}/`);
  await page.getByLabel("Username").fill(user.username);
  await page.getByLabel("Password").fill(user.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Sessions", exact: true }).click();
  await page.getByRole("heading", { name: "My sessions" }).waitFor();
  await page.getByText("192.0.2.44").waitFor();
  await page.getByRole("link", { name: /Play/ }).click();
  await page.getByRole("heading", { name: `SSH session on ${host.shortId}` }).waitFor();
  const player = page.getByTestId("session-player");
  await player.locator(".ap-player").waitFor({ timeout: 30_000 });
  // Start playback; the terminal then shows what only the recorded shell printed.
  await player.locator(".ap-player").click();
  await player.getByText("replay-42-marker", { exact: false }).first().waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(SHOTS, "session-player.png") });
  expect(problems).toEqual([]);
  expect(foreign).toEqual([]);
});
