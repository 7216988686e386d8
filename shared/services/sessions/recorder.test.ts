import { describe, expect, it } from "vitest";
import { AsciicastRecorder, type RecorderOptions } from "./recorder.js";

/** The asciicast v2 writer (docs/sessions.md#recording), against an in-memory sink. */
function recorder(opts: Partial<RecorderOptions> = {}) {
  const chunks: { seq: number; data: string }[] = [];
  let t = 0;
  const r = new AsciicastRecorder({
    mode: "input",
    width: 100,
    height: 30,
    term: "xterm-256color",
    maxBytes: 1024 * 1024,
    sink: async (seq, data) => {
      chunks.push({ seq, data });
    },
    now: () => (t += 10),
    startedAt: new Date("2026-01-02T03:04:05Z"),
    ...opts,
  });
  const cast = () =>
    chunks
      .sort((a, b) => a.seq - b.seq)
      .map((c) => c.data)
      .join("");
  const lines = () =>
    cast()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as unknown);
  return { r, chunks, cast, lines };
}

describe("AsciicastRecorder", () => {
  it("writes a v2 header, then output, input and resize events in order with rising times", async () => {
    const { r, lines, cast } = recorder();
    r.output(Buffer.from("$ "));
    r.input(Buffer.from("ls\r"));
    r.resize(120, 40);
    r.output(Buffer.from("a.txt\r\n"));
    const res = await r.close();
    const [header, ...events] = lines() as [Record<string, unknown>, ...[number, string, string][]];
    expect(header).toEqual({ version: 2, width: 100, height: 30, timestamp: 1767323045, env: { TERM: "xterm-256color" } });
    expect(events.map(([, k, d]) => [k, d])).toEqual([
      ["o", "$ "],
      ["i", "ls\r"],
      ["r", "120x40"],
      ["o", "a.txt\r\n"],
    ]);
    const times = events.map(([t]) => t);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(res).toMatchObject({ truncated: false });
    expect(res.bytes).toBe(Buffer.byteLength(cast()));
  });

  it("records no input in output mode", async () => {
    const { r, lines } = recorder({ mode: "output" });
    r.input(Buffer.from("secret-typed"));
    r.output(Buffer.from("shown"));
    await r.close();
    expect(lines().slice(1)).toEqual([[expect.any(Number), "o", "shown"]]);
  });

  it("joins a UTF-8 character split across reads", async () => {
    const { r, lines } = recorder();
    const euro = Buffer.from("€ and 漢", "utf8");
    r.output(euro.subarray(0, 1));
    r.output(euro.subarray(1, 5));
    r.output(euro.subarray(5));
    await r.close();
    expect(
      (lines().slice(1) as [number, string, string][])
        .map(([, , d]) => d)
        .join(""),
    ).toBe("€ and 漢");
  });

  it("stops at maxBytes, marks the recording truncated, and never exceeds the bound", async () => {
    const { r, cast } = recorder({ maxBytes: 2000, chunkBytes: 256 });
    for (let i = 0; i < 100; i++) r.output(Buffer.from(`line ${i} ${"x".repeat(40)}\r\n`));
    const res = await r.close();
    expect(res.truncated).toBe(true);
    expect(Buffer.byteLength(cast())).toBe(res.bytes);
    expect(res.bytes).toBeLessThanOrEqual(2000);
    // Every stored line is whole and valid JSON.
    for (const l of cast().split("\n").filter(Boolean)) expect(() => JSON.parse(l)).not.toThrow();
  });

  it("drops (and marks truncated) instead of buffering without end when the sink is slow", async () => {
    const release: (() => void)[] = [];
    const stored: number[] = [];
    const { r } = recorder({
      chunkBytes: 1024,
      maxPendingBytes: 4096,
      sink: (seq) =>
        new Promise<void>((resolve) =>
          release.push(() => {
            stored.push(seq);
            resolve();
          }),
        ),
    });
    // Far more than the pending bound while nothing is stored: no call waits, none throws.
    for (let i = 0; i < 1000; i++) r.output(Buffer.alloc(100, 0x61));
    expect(r.truncated).toBe(true);
    let done = false;
    const closing = r.close().finally(() => (done = true));
    // Let the stored chunks through one by one.
    while (!done) {
      await new Promise((res) => setImmediate(res));
      release.shift()?.();
    }
    const res = await closing;
    expect(res.truncated).toBe(true);
    expect(stored).toEqual([...stored].sort((a, b) => a - b));
    expect(stored.length).toBeLessThanOrEqual(5);
  });

  it("stops storing after a chunk failed (no gap in the middle of a recording)", async () => {
    const stored: number[] = [];
    const { r } = recorder({
      chunkBytes: 200,
      sink: async (seq) => {
        if (seq === 1) throw new Error("db down");
        stored.push(seq);
      },
    });
    for (let i = 0; i < 20; i++) r.output(Buffer.from("y".repeat(100)));
    const res = await r.close();
    expect(res.truncated).toBe(true);
    expect(stored).toEqual([0]);
  });
});
