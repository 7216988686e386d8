import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedis, waitForRedis } from "../../shared/redis.js";
import { recordEvent } from "../../shared/services/events.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { bareWorkerDeps } from "../../shared/test/worker-harness.js";
import type { WorkerDeps } from "../../worker/deps.js";
import { runWebhookDispatch } from "../../worker/schedulers/webhook-dispatch.js";

/**
 * The webhook dispatcher's scan of the events table (docs/api.md#webhooks-delivery), run by hand
 * (no worker consumes the queue here): an event is matched once, never before its transaction
 * commits and never skipped because it committed late; a burst larger than one run is finished by
 * the following runs, ties on created_at included.
 */
let h: ApiHarness;
let redis: Redis;
let deps: WorkerDeps;
let admin: string;

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  redis = createRedis(h.env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test-dispatch" });
  await waitForRedis(redis);
  deps = bareWorkerDeps(h, redis);
});
afterAll(async () => {
  redis?.disconnect();
  await h?.close();
});

async function hook(types: string[]): Promise<string> {
  const res = await h.request("POST", "/v1/admin/webhooks", { token: admin, body: { url: "http://127.0.0.1:9/dispatch", event_types: types } });
  expect(res.status, res.text).toBe(201);
  return res.body.webhook.id as string;
}

const deliveredEvents = async (hookId: string) =>
  (await h.database.sql<{ event_id: string }[]>`select event_id from webhook_deliveries where webhook_id = ${hookId}`).map((r) => r.event_id);

describe("the webhook dispatcher", () => {
  it("waits for an open transaction's event, and still finds an event whose transaction wrote late", async () => {
    const id = await hook(["test.late"]);
    // A writing transaction stays open across a run: its event is not visible, and the run's
    // horizon stops before it, so the committed event written after it waits too.
    let inside = "";
    let later = "";
    await h.database.sql.begin(async (tx) => {
      [{ id: inside }] = (await tx`insert into events (type, message) values ('test.late', 'written in an open transaction') returning id`) as unknown as [{ id: string }];
      later = await recordEvent(h.database.db, { type: "test.late", message: "committed after the open transaction began" });
      await runWebhookDispatch(deps);
      expect(await deliveredEvents(id)).toEqual([]);
    });
    await runWebhookDispatch(deps);
    expect((await deliveredEvents(id)).sort()).toEqual([inside, later].sort());

    // A transaction that has not written anything yet when a run takes its horizon, then writes
    // an event dated at its start (behind the cursor): the next run's re-read window finds it.
    let late = "";
    await h.database.sql.begin(async (tx) => {
      await tx`select 1`;
      await runWebhookDispatch(deps);
      [{ id: late }] = (await tx`insert into events (type, message) values ('test.late', 'dated before the last run') returning id`) as unknown as [{ id: string }];
    });
    await runWebhookDispatch(deps);
    expect(await deliveredEvents(id)).toContain(late);
    // Runs again change nothing: one delivery per (webhook, event).
    await runWebhookDispatch(deps);
    const all = await deliveredEvents(id);
    expect(all.length).toBe(3);
    expect(new Set(all).size).toBe(3);
  });

  it("finishes a burst bigger than one run over the next runs, ties on created_at included", async () => {
    // Nothing left over from before: every run below counts only the burst.
    while ((await runWebhookDispatch(deps)).deliveries > 0);
    const id = await hook(["test.burst"]);
    const other = await hook(["test.elsewhere"]);
    // One statement: every row has the same created_at (the transaction's start).
    await h.database.sql`insert into events (type, message) select 'test.burst', 'burst ' || i from generate_series(1, 12345) i`;
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) runs.push((await runWebhookDispatch(deps)).deliveries);
    // A run examines at most 10 000 events (those of the re-read window included): the burst
    // takes two runs, then nothing is left.
    expect(runs[0]).toBeGreaterThan(9_000);
    expect(runs[1]).toBeGreaterThan(0);
    expect(runs.slice(2)).toEqual([0, 0, 0]);
    expect(runs[0]! + runs[1]!).toBe(12345);
    const [n] = await h.database.sql<{ n: number; distinct: number }[]>`
      select count(*)::int as n, count(distinct event_id)::int as distinct from webhook_deliveries where webhook_id = ${id}`;
    expect(n).toEqual({ n: 12345, distinct: 12345 });
    expect(await deliveredEvents(other)).toEqual([]);
  });
});
