import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

/**
 * When the live hub polls (docs/architecture.md#live-updates): the reads themselves are stubbed
 * (their SQL is covered by test/integration/sse*.test.ts); what is checked is that a notification
 * polls at once, that notifications during a poll coalesce into exactly one more, and that the
 * hub listens only while it has subscribers. The interval is an hour, so every poll seen here
 * was caused by a notification (or is the first one).
 */
const reads = vi.hoisted(() => ({ count: 0, gate: null as null | Promise<void> }));
vi.mock("../../shared/services/live/changes.js", () => ({
  loadHostStates: async () => {
    reads.count++;
    await reads.gate;
    return [];
  },
  loadTaskChanges: async () => [],
}));
const { createLiveHub } = await import("./hub.js");

const logger = { warn: () => {} } as never;
const until = async (what: string, ok: () => boolean) => {
  for (let i = 0; i < 1000 && !ok(); i++) await new Promise((r) => setImmediate(r));
  if (!ok()) throw new Error(`never: ${what}`);
};

let notify: (() => void) | null = null;
let listening = 0;
const listen = (onChange: () => void) => {
  listening++;
  notify = onChange;
  return () => {
    listening--;
    notify = null;
  };
};

beforeEach(() => {
  reads.count = 0;
  reads.gate = null;
});
afterEach(() => {
  notify = null;
});

describe("the live hub with notifications", () => {
  it("polls at once on a notification and coalesces those that arrive during a poll", async () => {
    const hub = createLiveHub({ db: {} as never, logger, pollMs: 3_600_000, listen });
    let ready = false;
    const off = hub.subscribe({ kind: "admin" }, { send: () => {}, ready: () => (ready = true), close: () => {} });
    await until("the baseline", () => ready);
    expect(reads.count).toBe(1);

    notify!();
    await until("a poll on the notification", () => reads.count === 2);

    let open!: () => void;
    reads.gate = new Promise<void>((r) => (open = r));
    notify!();
    await until("the held poll", () => reads.count === 3);
    notify!();
    notify!();
    notify!();
    reads.gate = null;
    open();
    await until("one more poll", () => reads.count === 4);
    // Give a (wrong) fifth poll every chance to start.
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    expect(reads.count).toBe(4);

    off();
    hub.close();
  });

  it("listens only while someone is subscribed", async () => {
    const hub = createLiveHub({ db: {} as never, logger, pollMs: 3_600_000, listen });
    expect(listening).toBe(0);
    const sub = () => hub.subscribe({ kind: "admin" }, { send: () => {}, ready: () => {}, close: () => {} });
    const a = sub();
    const b = sub();
    expect(listening).toBe(1);
    a();
    expect(listening).toBe(1);
    b();
    expect(listening).toBe(0);
    const c = sub();
    expect(listening).toBe(1);
    hub.close();
    expect(listening).toBe(0);
    c();
  });
});
