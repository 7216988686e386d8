import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { currentLogContext, newRequestId, withLogContext, withoutLogContext } from "./log-context.js";
import { createLogger } from "./logger.js";

/**
 * A marker that cannot occur in a log line by chance: a timestamp, a pid or a level never
 * contains 24 random hex digits. (Two-character markers failed whenever the ISO time's
 * hour started with 1 or 2.)
 */
const marker = (name: string) => `${name}-${randomBytes(12).toString("hex")}`;

/** A logger writing to memory: the raw lines (to count keys) and their parsed objects. */
function captured() {
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      raw.push(...String(chunk).split("\n").filter(Boolean));
      cb();
    },
  });
  const log = createLogger({ level: "debug", name: "test" }, sink);
  const lines = () => raw.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, raw, lines };
}
const occurrences = (line: string, key: string) => line.split(`"${key}":`).length - 1;

describe("logger redaction", () => {
  it("never writes secrets found in logged objects", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const m = {
      p1: marker("pw1"), p2: marker("pw2"), p3: marker("pw3"), p4: marker("pw4"), p5: marker("pw5"),
      t1: marker("tok1"), t2: marker("tok2"), t3: marker("tok3"),
      hash: `$argon2id$${marker("hash")}`, key: `-----BEGIN OPENSSH PRIVATE KEY-----${marker("key")}`,
      s1: marker("secret"), w1: marker("wgkey"), u1: marker("uuid"),
    };
    const log = createLogger({ level: "debug" }, sink);
    log.info(
      {
        password: m.p1,
        body: { password: m.p2, new_password: m.p3, old_password: m.p4 },
        token: m.t1,
        req: { headers: { authorization: `Bearer ${m.t2}`, cookie: `ccp_vnc=${m.t3}` } },
        user: { passwordHash: m.hash, private_key: m.key },
        ssh_password: m.p5,
        cfg: { secret: m.s1, wg_private_key: m.w1, uuid: m.u1 },
      },
      "something happened",
    );
    const out = lines.join("");
    for (const [name, s] of Object.entries(m)) {
      expect(out, name).not.toContain(s);
    }
    expect(out).not.toContain("PRIVATE KEY");
    expect(out).not.toContain("$argon2id$");
    expect(out).toContain("something happened");
    expect(out).toContain("[redacted]");
  });
});

describe("log context (shared/log-context.ts)", () => {
  it("puts the operation's fields on every line of any logger inside it, and none outside", async () => {
    const { log, lines } = captured();
    const moduleLogger = log.child({ module: "flows" }); // what code deep in a flow holds
    log.info("before");
    await withLogContext({ request_id: "req-1" }, async () => {
      log.info("process logger");
      await withLogContext({ task_id: "task-1", kind: "host.stop", host_id: "host-1" }, async () => {
        await new Promise((r) => setImmediate(r)); // a callback scheduled inside keeps the context
        moduleLogger.warn({ step: "stop" }, "module logger");
      });
      log.info("after the task");
    });
    log.info("outside");
    const [before, proc, mod, after, outside] = lines();
    expect(before).not.toHaveProperty("request_id");
    expect(proc).toMatchObject({ msg: "process logger", request_id: "req-1", proc: "test" });
    expect(proc).not.toHaveProperty("task_id");
    expect(mod).toMatchObject({
      msg: "module logger",
      module: "flows",
      step: "stop",
      request_id: "req-1",
      task_id: "task-1",
      kind: "host.stop",
      host_id: "host-1",
    });
    expect(after).toMatchObject({ msg: "after the task", request_id: "req-1" });
    expect(after).not.toHaveProperty("task_id");
    expect(outside).not.toHaveProperty("request_id");
  });

  it("never writes a key twice: a child's binding and the call's own fields win over the context", () => {
    const { log, raw, lines } = captured();
    withLogContext({ request_id: "from-context", task_id: "t-ctx" }, () => {
      log.child({ request_id: "from-child" }).info("child-bound");
      log.info({ task_id: "t-call" }, "call-site");
      log.child({ request_id: "from-child" }).child({ attempt: 2 }).info("grandchild");
    });
    expect(raw).toHaveLength(3);
    for (const line of raw) {
      expect(occurrences(line, "request_id"), line).toBe(1);
      expect(occurrences(line, "task_id"), line).toBe(1);
    }
    const [child, call, grandchild] = lines();
    expect(child).toMatchObject({ request_id: "from-child", task_id: "t-ctx" });
    expect(call).toMatchObject({ request_id: "from-context", task_id: "t-call" });
    expect(grandchild).toMatchObject({ request_id: "from-child", attempt: 2, task_id: "t-ctx" });
  });

  it("leaves out null fields (a task without a host) and keeps the outer ones", () => {
    const { log, lines } = captured();
    withLogContext({ request_id: "r" }, () =>
      withLogContext({ task_id: "t", host_id: null, request_id: undefined }, () => {
        expect(currentLogContext()).toEqual({ request_id: "r", task_id: "t" });
        log.info("x");
      }),
    );
    expect(lines()[0]).toMatchObject({ request_id: "r", task_id: "t" });
    expect(lines()[0]).not.toHaveProperty("host_id");
    expect(currentLogContext()).toBeUndefined();
  });

  it("keeps concurrent operations apart", async () => {
    const { log, lines } = captured();
    // "slow" resumes only when "fast" (inside its own context) releases it.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = withLogContext({ request_id: "slow" }, async () => {
      await gate;
      log.info("slow");
    });
    const fast = withLogContext({ request_id: "fast" }, async () => {
      log.info("fast");
      release();
    });
    await Promise.all([slow, fast]);
    expect(lines().map((l) => [l.msg, l.request_id])).toEqual([
      ["fast", "fast"],
      ["slow", "slow"],
    ]);
  });

  it("lets process-wide work started by one operation leave its context (and its timers too)", async () => {
    const { log, lines } = captured();
    await withLogContext({ request_id: "first-subscriber" }, async () => {
      const loop = () =>
        new Promise<void>((done) => {
          setImmediate(() => {
            log.info("shared loop");
            done();
          });
        });
      await withoutLogContext(loop);
      log.info("the request again");
    });
    const [shared, again] = lines();
    expect(shared).not.toHaveProperty("request_id");
    expect(again).toMatchObject({ request_id: "first-subscriber" });
  });

  it("mints request ids in the API's format (a UUID)", () => {
    expect(newRequestId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(newRequestId()).not.toBe(newRequestId());
  });
});
