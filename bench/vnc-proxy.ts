/**
 * VNC proxy benchmark (issue 6; docs/api.md#vnc-proxy): WebSocket throughput and round-trip time
 * through the API's VNC proxy vs straight to the host's :6901, in the same run.
 *
 *   npx tsx bench/vnc-proxy.ts [--mib 256] [--rounds 20] [--pings 300] [--frames 60]
 *
 * A throwaway stack (bench/lib/stack.ts: its own database, Redis prefix and containers, all
 * removed at the end, also on Ctrl-C) creates one real host. After part 1 its desktop is replaced
 * by the capture server (test/docker/fixtures/vnc-capture.py), which floods N MiB of 64 KiB
 * binary frames on /flood and echoes on any other path. The API runs as its own process
 * (`main.ts api`, like production), so the client and the proxy do not share an event loop.
 *
 * 1. The real desktop: a minimal RFB client (security None, raw encoding) asks the host's own
 *    Xtigervnc, through websockify, for `--frames` full 1280×800×32bpp frames (4 MiB each), one
 *    after another — what a viewer repainting the whole screen pulls. Rounds alternate direct →
 *    proxy; frames/s and MiB/s, medians, ratio proxy/direct (target ≥ 0.9).
 * 2. Raw WebSocket throughput (the capture server's flood, host → browser): each round opens a
 *    WebSocket, reads N MiB and times open → last byte; medians and ratio. This one saturates the
 *    machine's two cores (sender, proxy and client each want one), so it bounds the proxy's cost
 *    rather than a desktop's speed; the API process's CPU seconds per GiB are printed with it,
 *    next to two same-run references: this client's own CPU-s/GiB on the direct downloads (what
 *    one WebSocket endpoint costs) and a bare relay's — a process that does nothing but copy
 *    the same TCP bytes from socket to socket in Node, both ways with pipe() as the proxy does
 *    after the upgrade (api/vnc/websocket.ts), in a child process of its own (this script with
 *    `--bare-relay <host>:<port>`), downloads
 *    alternating with the others. The API proxy cannot cost less than the bare relay: what is
 *    left there is the kernel's TCP work and one read and one write per 64 KiB.
 * 3. Round trip: `--pings` 1 KiB echo round trips one after another (typing/pointer traffic);
 *    p50/p95 and the added p50.
 * Traffic stays on this machine: loopback to the API, the management bridge to the host.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { projectRoot } from "../shared/paths.js";
import { freePort } from "../shared/test/processes.js";
import { startCapture, waitForPort6901 } from "../shared/test/vnc.js";
import { createServer, connect, type AddressInfo } from "node:net";
import { benchRow, writeBenchResult } from "./lib/report.js";
import { median, mib, percentile, startBenchStack } from "./lib/stack.js";

const { values } = parseArgs({
  options: {
    mib: { type: "string", default: "256" },
    rounds: { type: "string", default: "20" },
    pings: { type: "string", default: "300" },
    frames: { type: "string", default: "60" },
    /** Internal: run as the bare relay to <host>:<port> (prints its port, relays until killed). */
    "bare-relay": { type: "string" },
  },
});
const SIZE = Number(values.mib) * 1024 * 1024;
const ROUNDS = Number(values.rounds);
const PINGS = Number(values.pings);
const FRAMES = Number(values.frames);
/** Viewer sessions that got no RFB data for 15 s (retried; reported). */
const STALL_MS = 15_000;
let stalls = 0;

/** A desktop round, retried up to 3 times when a session stalls. */
async function desktopRound(url: string, headers: Record<string, string>) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await desktopFrames(url, headers);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function open(url: string, headers: Record<string, string>): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    ws.once("unexpected-response", (_q, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
  });
}

async function download(base: string, headers: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const ws = await open(`${base}flood?bytes=${SIZE}`, headers);
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    ws.on("message", (d: Buffer) => {
      got += d.length;
      if (got >= SIZE) resolve();
    });
    ws.once("close", () => (got >= SIZE ? resolve() : reject(new Error(`closed after ${got} bytes`))));
  });
  const seconds = (performance.now() - t0) / 1000;
  ws.terminate();
  return mib(SIZE) / seconds;
}

async function pings(base: string, headers: Record<string, string>): Promise<number[]> {
  const ws = await open(`${base}echo`, headers);
  const payload = Buffer.alloc(1024, 1);
  const rtts: number[] = [];
  for (let i = 0; i < PINGS + 20; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      ws.once("message", () => resolve());
      ws.send(payload);
    });
    if (i >= 20) rtts.push(performance.now() - t0); // the first 20 warm up
  }
  ws.close();
  return rtts;
}

/** Bytes of a WebSocket as a stream: read(n) resolves once n bytes have arrived (no re-copying). */
function byteReader(ws: WebSocket) {
  const chunks: Buffer[] = [];
  let have = 0;
  let want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  let closed = false;
  const take = (n: number): Buffer => {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) chunks.shift();
      else chunks[0] = c.subarray(k);
    }
    have -= n;
    return out;
  };
  const feed = () => {
    if (want && have >= want.n) {
      const w = want;
      want = null;
      w.resolve(take(w.n));
    }
  };
  ws.on("message", (d: Buffer) => {
    chunks.push(d);
    have += d.length;
    feed();
  });
  ws.on("close", () => {
    closed = true;
    want?.reject(new Error("the WebSocket closed"));
  });
  const read = (n: number) =>
    new Promise<Buffer>((resolve, reject) => {
      want = { n, resolve, reject };
      feed();
      if (want && closed) reject(new Error("the WebSocket closed"));
    });
  return Object.assign(read, { state: () => ({ have, want: want?.n ?? null, closed, chunks: chunks.length }) });
}

/** RFB 3.8 with security None and raw encoding; `FRAMES` full-screen updates; MiB/s and frames/s. */
async function desktopFrames(url: string, headers: Record<string, string>): Promise<{ mibs: number; fps: number }> {
  const ws = await open(url, headers);
  const read = byteReader(ws);
  let step = "handshake";
  // A stall is STALL_MS without any data (as documented above), not a slow session: on a busy
  // machine 60 full frames can take longer than that while bytes keep arriving.
  let watchdog: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      console.error(`RFB client stuck at ${step} on ${url.replace(/vnc\/.*/, "vnc/…")}: ${JSON.stringify(read.state())}`);
      stalls++;
      ws.terminate();
    }, STALL_MS);
  };
  arm();
  ws.on("message", arm);
  const version = (await read(12)).toString("latin1");
  if (!version.startsWith("RFB 003.")) throw new Error(`not an RFB server: ${JSON.stringify(version)}`);
  ws.send(Buffer.from("RFB 003.008\n"));
  const types = await read((await read(1))[0]!);
  if (!types.includes(1)) throw new Error("security type None not offered");
  ws.send(Buffer.from([1]));
  if ((await read(4)).readUInt32BE(0) !== 0) throw new Error("security handshake failed");
  ws.send(Buffer.from([1])); // ClientInit: shared
  const init = await read(24);
  const [w, h, bpp] = [init.readUInt16BE(0), init.readUInt16BE(2), init[4]!];
  await read(init.readUInt32BE(20)); // desktop name
  const setEnc = Buffer.alloc(8);
  setEnc.writeUInt8(2, 0);
  setEnc.writeUInt16BE(1, 2);
  setEnc.writeInt32BE(0, 4); // raw
  ws.send(setEnc);
  const request = Buffer.alloc(10);
  request.writeUInt8(3, 0);
  request.writeUInt8(0, 1); // full, not incremental
  request.writeUInt16BE(w, 6);
  request.writeUInt16BE(h, 8);
  let bytes = 0;
  const t0 = performance.now();
  for (let f = 0; f < FRAMES; f++) {
    step = `frame ${f}`;
    ws.send(request);
    for (;;) {
      const head = await read(4);
      if (head[0] !== 0) throw new Error(`unexpected RFB message ${head[0]}`);
      const rects = head.readUInt16BE(2);
      for (let r = 0; r < rects; r++) {
        const rect = await read(12);
        const [rw, rh, enc] = [rect.readUInt16BE(4), rect.readUInt16BE(6), rect.readInt32BE(8)];
        step = `frame ${f} rect ${r}/${rects} ${rw}x${rh} enc ${enc}`;
        if (enc !== 0) continue; // pseudo-encodings carry no pixels here
        const n = rw * rh * (bpp / 8);
        await read(n);
        bytes += n;
      }
      break;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  clearTimeout(watchdog);
  ws.terminate();
  return { mibs: mib(bytes) / seconds, fps: FRAMES / seconds };
}

/** The bare relay (see the header): the proxy's byte path between two sockets, nothing else. */
function bareRelay(target: string): void {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const server = createServer((client) => {
    const upstream = connect({ host, port }, () => {
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) s.once("close", close).on("error", close);
  });
  server.listen(0, "127.0.0.1", () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(stat[11]) + Number(stat[12])) / 100; // utime + stime, in seconds (USER_HZ 100)
}

async function main() {
  const stack = await startBenchStack();
  let api: ChildProcess | undefined;
  let bare: ChildProcess | undefined;
  try {
    const host = await stack.createHost();
    await waitForPort6901(host.id);

    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    api = spawn(process.execPath, ["--import", "tsx", join(projectRoot, "main.ts"), "api"], {
      env: { ...process.env, ...(stack.env as NodeJS.ProcessEnv), API_LISTEN_ADDR: `127.0.0.1:${port}`, PUBLIC_BASE_URL: baseUrl, LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "inherit"],
    });
    for (let i = 0; ; i++) {
      const ok = await fetch(`${baseUrl}/healthz`).then((r) => r.ok).catch(() => false);
      if (ok) break;
      if (i > 300) throw new Error("the api process did not start");
      await sleep(100);
    }
    const direct = `ws://${host.managementAddress}:6901/`;
    const proxied = `ws://127.0.0.1:${port}/v1/admin/hosts/${host.id}/vnc/`;
    const auth = { authorization: `Bearer ${stack.adminToken}` };

    console.log(`VNC proxy benchmark: ${ROUNDS} rounds; host ${host.managementAddress}`);

    // 1. The real desktop (websockify answers HTTP a moment before Xtigervnc accepts viewers).
    for (let i = 0; ; i++) {
      const ok = await desktopFrames(`${direct}websockify`, {}).then(() => true, () => false);
      if (ok) break;
      if (i > 100) throw new Error("the host's desktop does not answer RFB");
      await sleep(200);
    }
    // The first viewer makes the session open Firefox: let that start-up finish before measuring.
    await sleep(15_000);
    await desktopRound(`${proxied}websockify`, auth); // warm-up, uncounted
    const fd: number[] = [];
    const fp: number[] = [];
    const md: number[] = [];
    const mp: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const a = await desktopRound(`${direct}websockify`, {});
      const b = await desktopRound(`${proxied}websockify`, auth);
      fd.push(a.fps);
      fp.push(b.fps);
      md.push(a.mibs);
      mp.push(b.mibs);
      console.log(`  desktop round ${r + 1}: direct ${a.fps.toFixed(1)} fps (${a.mibs.toFixed(0)} MiB/s), proxy ${b.fps.toFixed(1)} fps (${b.mibs.toFixed(0)} MiB/s)`);
    }
    console.log(
      `desktop, ${FRAMES} full raw frames (median): direct ${median(fd).toFixed(1)} fps / ${median(md).toFixed(0)} MiB/s, ` +
        `proxy ${median(fp).toFixed(1)} fps / ${median(mp).toFixed(0)} MiB/s → ratio ${(median(fp) / median(fd)).toFixed(2)} (target ≥ 0.90); ` +
        `stalled sessions retried: ${stalls}`,
    );

    // 2. Raw WebSocket throughput against the capture server.
    await startCapture(host.id);
    console.log(`raw WebSocket: ${values.mib} MiB per download`);
    // The bare relay (see the header), in a process of its own like the API.
    bare = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--bare-relay", `${host.managementAddress}:6901`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const barePort = await new Promise<number>((resolve, reject) => {
      bare!.stdout!.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
      bare!.once("exit", (code) => reject(new Error(`the bare relay exited (${code})`)));
    });
    const viaBare = `ws://127.0.0.1:${barePort}/`;
    await download(direct, {});
    await download(proxied, auth); // warm-ups, uncounted
    await download(viaBare, {});
    const gib = SIZE / 1024 ** 3;
    const rate: Record<"direct" | "proxy" | "bare", number[]> = { direct: [], proxy: [], bare: [] };
    /** CPU-s per GiB: the API process (proxy), the bare relay process, this client (direct). */
    const cost: Record<"direct" | "proxy" | "bare", number[]> = { direct: [], proxy: [], bare: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const c0 = process.cpuUsage();
      rate.direct.push(await download(direct, {}));
      const c = process.cpuUsage(c0);
      cost.direct.push((c.user + c.system) / 1e6 / gib);
      let a0 = cpuOf(api.pid!);
      rate.proxy.push(await download(proxied, auth));
      cost.proxy.push((cpuOf(api.pid!) - a0) / gib);
      a0 = cpuOf(bare.pid!);
      rate.bare.push(await download(viaBare, {}));
      cost.bare.push((cpuOf(bare.pid!) - a0) / gib);
      console.log(
        `  round ${r + 1}: direct ${rate.direct.at(-1)!.toFixed(0)} MiB/s (client ${cost.direct.at(-1)!.toFixed(2)} CPU-s/GiB), ` +
          `proxy ${rate.proxy.at(-1)!.toFixed(0)} MiB/s (API ${cost.proxy.at(-1)!.toFixed(2)} CPU-s/GiB), ` +
          `bare relay ${rate.bare.at(-1)!.toFixed(0)} MiB/s (${cost.bare.at(-1)!.toFixed(2)} CPU-s/GiB)`,
      );
    }
    const dm = median(rate.direct);
    const pm = median(rate.proxy);
    const bm = median(rate.bare);
    console.log(
      `raw WebSocket throughput (medians of ${ROUNDS}): direct ${dm.toFixed(0)} MiB/s, proxy ${pm.toFixed(0)} MiB/s → ratio ${(pm / dm).toFixed(2)} ` +
        `(target ≥ 0.90); bare relay ${bm.toFixed(0)} MiB/s → ratio ${(bm / dm).toFixed(2)}`,
    );
    console.log(
      `CPU-s per GiB (medians): API process proxying ${median(cost.proxy).toFixed(2)}, bare relay ${median(cost.bare).toFixed(2)} ` +
        `(the floor for a Node relay), WebSocket client on the direct path ${median(cost.direct).toFixed(2)}`,
    );

    const rd = await pings(direct, {});
    const rp = await pings(proxied, auth);
    const f = (xs: number[]) => `p50 ${percentile(xs, 50).toFixed(3)} ms, p95 ${percentile(xs, 95).toFixed(3)} ms`;
    console.log(`round trip, 1 KiB echo: direct ${f(rd)}; proxy ${f(rp)}; added p50 ${(percentile(rp, 50) - percentile(rd, 50)).toFixed(3)} ms`);
    const ratio09 = { of: "ratio", op: ">=", value: 0.9, text: "≥ 0.9× direct" } as const;
    writeBenchResult("vnc-proxy", [
      benchRow({ path: `desktop via the VNC proxy, ${FRAMES} full frames`, unit: "fps", ours: median(fp), baseline: median(fd), baselineLabel: "direct", target: ratio09 }),
      benchRow({ path: "desktop WebSocket proxy throughput (raw)", unit: "MiB/s", ours: pm, baseline: dm, baselineLabel: "direct", target: ratio09, note: `CPU-s/GiB proxy ${median(cost.proxy).toFixed(2)}, bare relay ${median(cost.bare).toFixed(2)}` }),
      benchRow({ path: "VNC 1 KiB round trip p50", unit: "ms", ours: percentile(rp, 50), baseline: percentile(rd, 50), baselineLabel: "direct" }),
    ]);
  } finally {
    api?.kill("SIGTERM");
    bare?.kill("SIGTERM");
    await stack.close();
  }
}

if (values["bare-relay"]) bareRelay(values["bare-relay"]);
else main().catch((err) => {
  console.error(err);
  process.exit(1);
});
