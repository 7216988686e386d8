import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWorkerConfig } from "../../shared/config/worker.js";
import { createLogger } from "../../shared/logger.js";
import { recordEvent } from "../../shared/services/events.js";
import { verifySignature } from "../../shared/services/webhooks/signing.js";
import { type ApiHarness, createApiHarness, findSecrets, type TestUser } from "../../shared/test/api-harness.js";
import { memoryWorkerEnv } from "../../shared/test/worker-harness.js";
import { startWorker } from "../../worker/main.js";
import { MemoryRuntime } from "../../worker/runtime/memory/memory-runtime.js";

/**
 * Signed webhooks end to end (docs/api.md#webhooks): the admin API, the dispatcher scanning the
 * events table, BullMQ delivery jobs with their back-off, and a real HTTP receiver on 127.0.0.1.
 * The back-off base and the dispatch interval are milliseconds here; every wait is for a condition,
 * with a deadline.
 */

interface Received {
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

let h: ApiHarness;
let admin: string;
let user: TestUser;
let stopWorker: () => Promise<void>;
const workerLogs: string[] = [];
let receiver: Server;
let base = "";
const received: Received[] = [];
/** Per path: the answer to the n-th request (1-based), possibly after a gate the test opens. */
const behaviours = new Map<string, (n: number) => Promise<{ status: number; headers?: Record<string, string> }>>();
const counts = new Map<string, number>();

async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>, deadlineMs = 20_000): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A promise and the function that resolves it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = req.url ?? "/";
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      const n = (counts.get(path) ?? 0) + 1;
      counts.set(path, n);
      const behave = behaviours.get(path) ?? (async (): Promise<{ status: number; headers?: Record<string, string> }> => ({ status: 204 }));
      void behave(n).then(({ status, headers }) => {
        res.writeHead(status, headers);
        res.end("receiver says hi");
      });
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  h = await createApiHarness();
  admin = await h.adminToken();
  user = await h.createUser();
  const config = parseWorkerConfig(
    memoryWorkerEnv(h, {
      WEBHOOK_DISPATCH_INTERVAL_MS: "100",
      WEBHOOK_RETRY_BASE_MS: "20",
      WEBHOOK_MAX_ATTEMPTS: "3",
      // Generous: attempts 2 and 3 of the retry test wait at the receiver until the test has looked.
      WEBHOOK_TIMEOUT_MS: "30000",
    }),
  );
  const mem = new MemoryRuntime();
  mem.addImage(config.HOST_IMAGE);
  mem.addImage(config.GATEWAY_IMAGE);
  const sink = new Writable({
    write(chunk, _e, cb) {
      workerLogs.push(String(chunk));
      cb();
    },
  });
  const w = await startWorker(config, createLogger({ level: "debug" }, sink), { database: h.database, runtime: mem });
  stopWorker = w.stop;
});

afterAll(async () => {
  await stopWorker?.();
  await h?.close();
  await new Promise((r) => receiver?.close(r));
});

async function createHook(path: string, eventTypes: string[], extra: Record<string, unknown> = {}) {
  const res = await h.request("POST", "/v1/admin/webhooks", { token: admin, body: { url: `${base}${path}`, event_types: eventTypes, ...extra } });
  expect(res.status, res.text).toBe(201);
  return { id: res.body.webhook.id as string, secret: res.body.secret as string };
}

const deliveriesOf = async (hookId: string) => {
  const res = await h.request("GET", `/v1/admin/webhooks/${hookId}/deliveries`, { token: admin });
  expect(res.status, res.text).toBe(200);
  return res.body.deliveries as { id: string; event_id: string; event_type: string; status: string; attempts: number; response_status: number | null; error: string | null; next_attempt_at: string | null; duration_ms: number | null }[];
};

const deliveryRow = async (id: string) =>
  (
    await h.database.sql<{ status: string; attempts: number; response_status: number | null; error: string | null; next_attempt_at: Date | null }[]>`
      select status, attempts, response_status, error, next_attempt_at from webhook_deliveries where id = ${id}`
  )[0];

const event = (type: string, extra: { hostId?: string } = {}) =>
  recordEvent(h.database.db, { type, message: `marker event ${type}`, hostId: extra.hostId ?? null, metadata: { marker: "wh-test-7f3a" } });

describe("webhook delivery", () => {
  it("signs the event with the secret returned at creation, and only the chosen event types are sent", async () => {
    const hook = await createHook("/attest", ["egress.*"]);
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    const skipped = await event("host.created");
    const wanted = await event("egress.attestation.failed");
    const got = await until("the egress event at the receiver", async () => received.find((r) => r.path === "/attest"));
    expect(got.headers["content-type"]).toBe("application/json");
    const ts = got.headers["x-ccp-timestamp"] as string;
    const sig = got.headers["x-ccp-signature"] as string;
    expect(sig).toMatch(/^v1=[0-9a-f]{64}$/);
    expect(verifySignature(hook.secret, ts, got.body, sig, Math.floor(Date.now() / 1000))).toBe(true);
    expect(verifySignature(`${hook.secret}x`, ts, got.body, sig, Math.floor(Date.now() / 1000))).toBe(false);
    const body = JSON.parse(got.body);
    expect(body).toMatchObject({ id: wanted, type: "egress.attestation.failed", metadata: { marker: "wh-test-7f3a" } });
    // The same object as the event list shows.
    const listed = await h.request("GET", `/v1/admin/events?type=egress.attestation.failed`, { token: admin });
    expect(listed.body.events.find((e: { id: string }) => e.id === wanted)).toEqual(body);
    expect(got.headers["x-ccp-event-type"]).toBe("egress.attestation.failed");
    expect(got.headers["x-ccp-webhook"]).toBe(hook.id);
    const deliveries = await until("the delivery to succeed", async () => {
      const d = await deliveriesOf(hook.id);
      return d.length === 1 && d[0]!.status === "succeeded" ? d : undefined;
    });
    expect(got.headers["x-ccp-delivery"]).toBe(deliveries[0]!.id);
    expect(deliveries[0]).toMatchObject({ event_id: wanted, attempts: 1, response_status: 204, error: null });
    // host.created is older than the delivered event: the dispatcher has read past it.
    const [n] = await h.database.sql<{ n: number }[]>`select count(*)::int as n from webhook_deliveries where event_id = ${skipped}`;
    expect(n!.n).toBe(0);
  });

  it("retries with back-off through the queue: two failures then a success is succeeded after 3 attempts, each attempt logged", async () => {
    const gates = [gate(), gate()];
    behaviours.set("/flaky", async (n) => {
      // Attempts 2 and 3 wait until the test has seen the row the attempt before left.
      if (n >= 2) await gates[n - 2]!.wait;
      return { status: n <= 2 ? 500 : 200 };
    });
    const hook = await createHook("/flaky", ["test.flaky"]);
    const ev = await event("test.flaky");
    const [d] = await until("the delivery row", async () => {
      const list = await deliveriesOf(hook.id);
      return list.length ? list : undefined;
    });
    const first = await until("attempt 1 recorded", async () => {
      const r = await deliveryRow(d!.id);
      return r && r.attempts === 1 ? r : undefined;
    });
    expect(first).toMatchObject({ status: "pending", response_status: 500, error: "http_500" });
    expect(first.next_attempt_at).not.toBeNull();
    gates[0]!.open();
    const second = await until("attempt 2 recorded", async () => {
      const r = await deliveryRow(d!.id);
      return r && r.attempts === 2 ? r : undefined;
    });
    expect(second).toMatchObject({ status: "pending", response_status: 500, error: "http_500" });
    gates[1]!.open();
    const done = await until("the delivery to succeed", async () => {
      const r = (await deliveriesOf(hook.id))[0]!;
      return r.status === "succeeded" ? r : undefined;
    });
    expect(done).toMatchObject({ event_id: ev, attempts: 3, response_status: 200, error: null, next_attempt_at: null });
    expect(done.duration_ms).toEqual(expect.any(Number));
    const attempts = received.filter((r) => r.path === "/flaky");
    expect(attempts).toHaveLength(3);
    expect(new Set(attempts.map((a) => a.headers["x-ccp-delivery"]))).toEqual(new Set([d!.id]));
    expect(new Set(attempts.map((a) => a.body)).size).toBe(1);
  });

  it("fails after the last attempt; never follows a redirect", async () => {
    behaviours.set("/down", async () => ({ status: 503 }));
    behaviours.set("/moved", async () => ({ status: 302, headers: { location: `${base}/elsewhere` } }));
    const down = await createHook("/down", ["test.down"]);
    const moved = await createHook("/moved", ["test.down"]);
    await event("test.down");
    const failed = await until("both deliveries to fail", async () => {
      const a = (await deliveriesOf(down.id))[0];
      const b = (await deliveriesOf(moved.id))[0];
      return a?.status === "failed" && b?.status === "failed" ? [a, b] : undefined;
    });
    expect(failed[0]).toMatchObject({ attempts: 3, response_status: 503, error: "http_503", next_attempt_at: null });
    expect(failed[1]).toMatchObject({ attempts: 3, response_status: 302, error: "redirect_not_followed (http_302)" });
    expect(received.filter((r) => r.path === "/down")).toHaveLength(3);
    expect(received.filter((r) => r.path === "/elsewhere")).toHaveLength(0);
  });

  it("sends a test event on request, and a rotated secret signs what follows", async () => {
    const hook = await createHook("/tested", ["nothing.matches.this"]);
    const res = await h.request("POST", `/v1/admin/webhooks/${hook.id}/test`, { token: admin });
    expect(res.status, res.text).toBe(202);
    expect(res.body.delivery).toMatchObject({ webhook_id: hook.id, event_type: "webhook.tested", status: "pending", attempts: 0 });
    const got = await until("the test event", async () => received.find((r) => r.path === "/tested"));
    expect(JSON.parse(got.body)).toMatchObject({ id: res.body.delivery.event_id, type: "webhook.tested", metadata: { webhook_id: hook.id } });
    expect(verifySignature(hook.secret, got.headers["x-ccp-timestamp"] as string, got.body, got.headers["x-ccp-signature"] as string, Math.floor(Date.now() / 1000))).toBe(true);

    const rotated = await h.request("POST", `/v1/admin/webhooks/${hook.id}/rotate-secret`, { token: admin });
    expect(rotated.status, rotated.text).toBe(200);
    const secret2 = rotated.body.secret as string;
    expect(secret2).not.toBe(hook.secret);
    await h.request("POST", `/v1/admin/webhooks/${hook.id}/test`, { token: admin });
    const second = await until("the second test event", async () => received.filter((r) => r.path === "/tested")[1]);
    const args = [second.headers["x-ccp-timestamp"] as string, second.body, second.headers["x-ccp-signature"] as string, Math.floor(Date.now() / 1000)] as const;
    expect(verifySignature(secret2, ...args)).toBe(true);
    expect(verifySignature(hook.secret, ...args)).toBe(false);

    // A disabled webhook gets nothing, and cannot be tested.
    const off = await h.request("PATCH", `/v1/admin/webhooks/${hook.id}`, { token: admin, body: { enabled: false } });
    expect(off.status, off.text).toBe(200);
    expect(off.body.webhook.enabled).toBe(false);
    const refused = await h.request("POST", `/v1/admin/webhooks/${hook.id}/test`, { token: admin });
    expect(refused.status, refused.text).toBe(409);
    expect(refused.body.code).toBe("webhook_disabled");
  });
});

describe("webhook administration", () => {
  it("never shows the secret again: not in GET answers, events or logs", async () => {
    const hook = await createHook("/quiet", ["egress.*", "host.created"], { description: "audit sink" });
    await h.request("POST", `/v1/admin/webhooks/${hook.id}/test`, { token: admin });
    await until("the quiet test delivery", async () => received.find((r) => r.path === "/quiet"));
    const answers = [
      await h.request("GET", "/v1/admin/webhooks", { token: admin }),
      await h.request("GET", `/v1/admin/webhooks/${hook.id}`, { token: admin }),
      await h.request("GET", `/v1/admin/webhooks/${hook.id}/deliveries`, { token: admin }),
      await h.request("PATCH", `/v1/admin/webhooks/${hook.id}`, { token: admin, body: { description: "still an audit sink" } }),
      await h.request("GET", "/v1/admin/events?type=webhook.*", { token: admin }),
      await h.request("GET", "/v1/admin/events/export?type=webhook.*", { token: admin }),
    ];
    for (const a of answers) expect(a.status, a.text).toBe(200);
    expect(answers[1]!.body.webhook).toEqual({
      id: hook.id,
      url: `${base}/quiet`,
      description: "audit sink",
      event_types: ["egress.*", "host.created"],
      enabled: true,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    expect(findSecrets(answers.map((a) => a.text), [hook.secret])).toEqual([]);
    expect(findSecrets(h.logs, [hook.secret])).toEqual([]);
    expect(findSecrets(workerLogs, [hook.secret])).toEqual([]);
    const [stored] = await h.database.sql<{ secret_enc: string }[]>`select secret_enc from webhooks where id = ${hook.id}`;
    expect(stored!.secret_enc).toMatch(/^v1a:/);
    expect(stored!.secret_enc).not.toContain(hook.secret);
  });

  it("refuses bad bodies with 400 in the envelope, writing nothing", async () => {
    const before = await h.database.sql<{ n: number }[]>`select (select count(*) from webhooks)::int + (select count(*) from events)::int as n`;
    const bad: [unknown, string][] = [
      [{ url: "ftp://127.0.0.1/x", event_types: ["host.*"] }, "url"],
      [{ url: "http://user:pw@127.0.0.1/x", event_types: ["host.*"] }, "url"],
      [{ url: "not a url", event_types: ["host.*"] }, "url"],
      [{ url: `${base}/x`, event_types: [] }, "event_types"],
      [{ url: `${base}/x`, event_types: ["Host Created"] }, "event_types.0"],
      [{ url: `${base}/x`, event_types: ["host.*"], secret: "mine" }, "secret"],
      [{ event_types: ["host.*"] }, "url"],
    ];
    for (const [body, field] of bad) {
      const res = await h.request("POST", "/v1/admin/webhooks", { token: admin, body });
      expect(res.status, res.text).toBe(400);
      expect(res.body).toMatchObject({ code: "invalid_request", error: expect.any(String) });
      expect(res.body.details.map((d: { field: string }) => d.field), res.text).toContain(field);
    }
    const hook = await createHook("/unchanged", ["host.*"]);
    const after = await h.database.sql<{ n: number }[]>`select (select count(*) from webhooks)::int + (select count(*) from events)::int as n`;
    expect(after[0]!.n).toBe(before[0]!.n + 2); // only the good create: its row and its event
    const patch = await h.request("PATCH", `/v1/admin/webhooks/${hook.id}`, { token: admin, body: { url: "javascript:alert(1)", enabled: false } });
    expect(patch.status, patch.text).toBe(400);
    const get = await h.request("GET", `/v1/admin/webhooks/${hook.id}`, { token: admin });
    expect(get.body.webhook).toMatchObject({ url: `${base}/unchanged`, enabled: true });
    const missing = await h.request("GET", "/v1/admin/webhooks/00000000-0000-4000-8000-000000000000", { token: admin });
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe("webhook_not_found");
  });

  it("answers a user's token with 403 on every webhook and export route", async () => {
    const hook = await createHook("/forbidden", ["host.*"]);
    const routes: [string, string, unknown?][] = [
      ["POST", "/v1/admin/webhooks", { url: `${base}/x`, event_types: ["host.*"] }],
      ["GET", "/v1/admin/webhooks"],
      ["GET", `/v1/admin/webhooks/${hook.id}`],
      ["PATCH", `/v1/admin/webhooks/${hook.id}`, { enabled: false }],
      ["DELETE", `/v1/admin/webhooks/${hook.id}`],
      ["POST", `/v1/admin/webhooks/${hook.id}/rotate-secret`],
      ["POST", `/v1/admin/webhooks/${hook.id}/test`],
      ["GET", `/v1/admin/webhooks/${hook.id}/deliveries`],
      ["GET", "/v1/admin/events/export"],
      ["GET", "/v1/admin/sessions/export"],
    ];
    for (const [method, path, body] of routes) {
      const res = await h.request(method, path, { token: user.token, body });
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(403);
      expect(res.body.code).toBe("forbidden");
    }
    expect((await h.request("GET", `/v1/admin/webhooks/${hook.id}`, { token: admin })).body.webhook.enabled).toBe(true);
  });

  it("deletes a webhook with its delivery log", async () => {
    const hook = await createHook("/gone", ["test.gone"]);
    await event("test.gone");
    await until("the delivery", async () => (await deliveriesOf(hook.id)).find((d) => d.status === "succeeded"));
    const del = await h.request("DELETE", `/v1/admin/webhooks/${hook.id}`, { token: admin });
    expect(del.status, del.text).toBe(204);
    const [n] = await h.database.sql<{ n: number }[]>`select count(*)::int as n from webhook_deliveries where webhook_id = ${hook.id}`;
    expect(n!.n).toBe(0);
    expect((await h.request("GET", `/v1/admin/webhooks/${hook.id}/deliveries`, { token: admin })).status).toBe(404);
  });
});
