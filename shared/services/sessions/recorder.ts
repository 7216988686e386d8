/**
 * The asciicast v2 writer of SSH session recording (docs/sessions.md#recording).
 *
 * The relay calls `output`/`input`/`resize` synchronously on its hot path; nothing here ever
 * waits for the database. Events become asciicast lines in memory; full chunks are handed to an
 * async `sink` one at a time (in order, `seq` 0, 1, 2…). Two bounds keep the session safe:
 *
 * - `maxBytes`: the recording's total size. The line that would cross it is not written, the
 *   recording stops there and `truncated` is set; the session goes on unrecorded.
 * - `maxPendingBytes`: bytes waiting for the sink (the database is slow or down). Past it the
 *   recording also stops (`truncated`) instead of buffering without end or slowing the relay.
 *
 * UTF-8 split across reads (a multi-byte character cut by the transport) is joined by one
 * streaming TextDecoder per direction; invalid bytes become U+FFFD, as the player would show them.
 */
export type RecordingMode = "output" | "input";

export interface RecorderOptions {
  mode: RecordingMode;
  width: number;
  height: number;
  term?: string | undefined;
  /** Total bytes of the .cast (header included) before the recording stops. */
  maxBytes: number;
  /** Bytes handed to the sink and not yet stored before the recording gives up (truncated). */
  maxPendingBytes?: number;
  /** A chunk is handed to the sink once this many bytes are buffered (or at `flushMs`). */
  chunkBytes?: number;
  /** Buffered lines are handed over at least this often, so a live session's recording grows. */
  flushMs?: number;
  /** Store one chunk; rejections are counted (the recording is then marked truncated). */
  sink: (seq: number, data: string) => Promise<void>;
  /** Monotonic milliseconds (tests pass their own). */
  now?: () => number;
  /** Wall-clock start, for the header's `timestamp`. */
  startedAt?: Date;
}

export interface RecordingResult {
  bytes: number;
  truncated: boolean;
  chunks: number;
}

/**
 * Postgres stores big rows far faster than many small ones: on the reference machine one insert
 * at a time took 28 MiB/s in 256 KiB chunks and 74 MiB/s in 1 MiB chunks (TOAST per row), and a
 * pty stream through the proxy runs at ~40-60 MiB/s. Quiet sessions still flush every `flushMs`.
 */
const DEFAULT_CHUNK = 1024 * 1024;
const DEFAULT_PENDING = 8 * 1024 * 1024;

/**
 * Bounds shared by every recorder of the process (one sshd serves every tenant): at most
 * PROCESS_PENDING bytes of all recordings wait for the database, and at most PROCESS_WRITERS chunk
 * inserts run at once, so many flooding sessions neither grow the proxy's memory without end nor
 * take the database pool that logins need. A recorder that would cross the byte bound stops
 * (truncated), exactly as for its own bound.
 */
const PROCESS_PENDING = 64 * 1024 * 1024;
const PROCESS_WRITERS = 2;
const processBudget = { pending: 0, writers: 0, waiting: [] as (() => void)[] };
async function writerSlot(): Promise<() => void> {
  if (processBudget.writers >= PROCESS_WRITERS) await new Promise<void>((r) => processBudget.waiting.push(r));
  processBudget.writers++;
  return () => {
    processBudget.writers--;
    processBudget.waiting.shift()?.();
  };
}
/** Terminal sizes come from the client's pty request (any 32-bit value): the player gets sane ones. */
const clampSize = (n: number, fallback: number) => Math.min(1000, Math.max(1, Math.floor(n) || fallback));

export class AsciicastRecorder {
  private readonly opts: Required<Omit<RecorderOptions, "term" | "startedAt">> & Pick<RecorderOptions, "term" | "startedAt">;
  private readonly t0: number;
  private readonly out = new TextDecoder("utf-8");
  private readonly inp = new TextDecoder("utf-8");
  private buffer: string[] = [];
  private bufferBytes = 0;
  /** Bytes of the recording so far (lines accepted, stored or not). */
  private total = 0;
  private pendingBytes = 0;
  private seq = 0;
  private stopped = false;
  private closed = false;
  private truncatedFlag = false;
  private sinkFailed = false;
  /** The sink calls, chained so chunks are stored in order and one at a time. */
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: RecorderOptions) {
    this.opts = {
      maxPendingBytes: DEFAULT_PENDING,
      chunkBytes: DEFAULT_CHUNK,
      flushMs: 2000,
      now: () => performance.now(),
      ...opts,
    };
    this.t0 = this.opts.now();
    const header: Record<string, unknown> = {
      version: 2,
      width: clampSize(opts.width, 80),
      height: clampSize(opts.height, 24),
      timestamp: Math.floor((opts.startedAt ?? new Date()).getTime() / 1000),
      env: { TERM: opts.term || "xterm" },
    };
    this.push(`${JSON.stringify(header)}\n`);
    this.timer = setInterval(() => this.flush(), this.opts.flushMs);
    this.timer.unref();
  }

  get truncated(): boolean {
    return this.truncatedFlag;
  }

  /** Bytes from the host to the client. */
  output(data: Buffer): void {
    if (this.stopped) return;
    const text = this.out.decode(data, { stream: true });
    if (text) this.event("o", text);
  }

  /** Bytes from the client to the host (keystrokes); recorded only in `input` mode. */
  input(data: Buffer): void {
    if (this.stopped || this.opts.mode !== "input") return;
    const text = this.inp.decode(data, { stream: true });
    if (text) this.event("i", text);
  }

  resize(cols: number, rows: number): void {
    if (this.stopped || !cols || !rows) return;
    this.event("r", `${clampSize(cols, 80)}x${clampSize(rows, 24)}`);
  }

  /** Stop recording, hand the rest over and wait until every chunk was stored (or failed). */
  async close(): Promise<RecordingResult> {
    if (!this.closed) {
      this.closed = true;
      if (!this.stopped) {
        const o = this.out.decode();
        if (o) this.event("o", o);
        const i = this.opts.mode === "input" ? this.inp.decode() : "";
        if (i) this.event("i", i);
      }
      this.stopped = true;
      if (this.timer) clearInterval(this.timer);
      this.flush();
    }
    await this.chain;
    return { bytes: this.total, truncated: this.truncatedFlag, chunks: this.seq };
  }

  private event(kind: "o" | "i" | "r", text: string): void {
    const t = (this.opts.now() - this.t0) / 1000;
    this.push(`[${t.toFixed(6)},"${kind}",${JSON.stringify(text)}]\n`);
  }

  private push(line: string): void {
    // UTF-16 length is a cheap upper bound of nothing, so count the real UTF-8 size.
    const n = Buffer.byteLength(line);
    if (this.total + n > this.opts.maxBytes) return this.stop();
    this.total += n;
    this.buffer.push(line);
    this.bufferBytes += n;
    if (this.bufferBytes >= this.opts.chunkBytes) this.flush();
  }

  /** The recording ends here (size bound, or the store fell behind); the session does not. */
  private stop(): void {
    this.truncatedFlag = true;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.flush();
  }

  private flush(): void {
    if (this.bufferBytes === 0) return;
    if (this.pendingBytes + this.bufferBytes > this.opts.maxPendingBytes || processBudget.pending + this.bufferBytes > PROCESS_PENDING) {
      // The database is not keeping up: drop what is buffered rather than hold the session's
      // memory or slow it down. What was already handed over is still stored, in order.
      this.total -= this.bufferBytes;
      this.buffer = [];
      this.bufferBytes = 0;
      this.truncatedFlag = true;
      this.stopped = true;
      if (this.timer) clearInterval(this.timer);
      return;
    }
    const data = this.buffer.join("");
    const size = this.bufferBytes;
    const seq = this.seq++;
    this.buffer = [];
    this.bufferBytes = 0;
    this.pendingBytes += size;
    processBudget.pending += size;
    const done = () => {
      this.pendingBytes -= size;
      processBudget.pending -= size;
    };
    const lost = () => {
      done();
      this.total -= size;
    };
    this.chain = this.chain.then(async () => {
      // A chunk that could not be stored leaves a gap: nothing after it is stored either.
      if (this.sinkFailed) return lost();
      const release = await writerSlot();
      // Called inside a promise: a sink that throws synchronously is a failed chunk, not a crash.
      return Promise.resolve()
        .then(() => this.opts.sink(seq, data))
        .then(done, () => {
          lost();
          this.sinkFailed = true;
          this.truncatedFlag = true;
          this.stopped = true;
          if (this.timer) clearInterval(this.timer);
        })
        .finally(release);
    });
  }
}

/** The line users see on the session's stderr when recording is on (docs/sessions.md#recording). */
export function recordingNotice(mode: RecordingMode): string {
  return `cloud-cli-proxy: this session is recorded (${mode === "input" ? "output, input" : "output"})`;
}
