import { join } from "node:path";
import WebSocket from "ws";
import { projectRoot } from "../paths.js";
import { docker } from "./worker-harness.js";

/** Helpers for the VNC proxy tests and benchmark: a host's :6901 and WebSocket clients. */

const CAPTURE_SCRIPT = join(projectRoot, "test", "docker", "fixtures", "vnc-capture.py");
const hostContainer = (hostId: string) => `ccp-host-${hostId}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run a shell command in the host container (as root unless `user` is given). */
export function inHost(hostId: string, script: string, user?: string): string {
  return docker(["exec", ...(user ? ["-u", user] : []), hostContainer(hostId), "sh", "-c", script]);
}

/** Wait until something answers HTTP on the host's :6901 (the desktop starts with the host). */
export async function waitForPort6901(hostId: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      inHost(hostId, "curl -fsS -o /dev/null http://127.0.0.1:6901/");
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

/** Stop the host's desktop supervisor (and with it Xtigervnc, openbox, websockify). */
export async function stopDesktop(hostId: string): Promise<void> {
  // [x]-style patterns: pkill/pgrep -f must not match the `sh -c` running them.
  inHost(hostId, "pkill -TERM -f '/usr/local/bin/ccp-deskto[p]' || true");
  for (let i = 0; i < 100; i++) {
    if (inHost(hostId, "pgrep -f '[w]ebsockify|[X]tigervnc|[c]cp-desktop' || true").trim() === "") return;
    await sleep(100);
  }
  throw new Error("the desktop did not stop");
}

/**
 * Replace the host's VNC server with the capture server (test/docker/fixtures/vnc-capture.py):
 * it logs every request it receives and serves echo / flood WebSockets.
 */
export async function startCapture(hostId: string): Promise<void> {
  await stopDesktop(hostId);
  // Not /tmp: it is a tmpfs in a host, and `docker cp` writes under the mount, unseen.
  docker(["cp", CAPTURE_SCRIPT, `${hostContainer(hostId)}:/opt/vnc-capture.py`]);
  docker(["exec", "-d", "-u", "workspace", hostContainer(hostId), "python3", "/opt/vnc-capture.py", "6901"]);
  await waitForPort6901(hostId);
  inHost(hostId, ": > /tmp/vnc-capture.log");
}

export function stopCapture(hostId: string): void {
  inHost(hostId, "pkill -f '[v]nc-capture.py' || true");
}

export interface CapturedRequest {
  method: string;
  path: string;
  headers: [string, string][];
  body_len: number;
}

export function capturedRequests(hostId: string): CapturedRequest[] {
  return inHost(hostId, "cat /tmp/vnc-capture.log 2>/dev/null || true")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as CapturedRequest);
}

/** Bytes the capture server's flood has handed to its socket so far. */
export function floodCount(hostId: string): number {
  return Number(inHost(hostId, "cat /tmp/vnc-flood.count 2>/dev/null || echo 0").trim() || "0");
}

export interface WsResult {
  ws: WebSocket;
  /** Every message received, from the first (which can arrive with the handshake). */
  messages: Buffer[];
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * Open a WebSocket; resolves on 101 with the handshake's response headers, or rejects with the
 * HTTP status and body of a refused upgrade (`err.status`, `err.body`).
 */
export function openWs(
  url: string,
  opts: { headers?: Record<string, string>; origin?: string; collect?: boolean } = {},
): Promise<WsResult> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: opts.headers, origin: opts.origin, perMessageDeflate: false });
    const messages: Buffer[] = [];
    if (opts.collect !== false) ws.on("message", (d: Buffer) => messages.push(Buffer.from(d)));
    ws.once("upgrade", (res) => resolve({ ws, messages, status: res.statusCode ?? 0, headers: res.headers }));
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body, headers: res.headers })));
    });
    ws.once("error", (err) => reject(err));
  });
}

/** Resolves with the close code when the socket closes. */
export function closed(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve(1006);
    ws.once("close", (code) => resolve(code));
  });
}

/**
 * A desktop-session cookie value the way a browser gets one (issue 10 §1): `POST …/vnc/session`
 * with the bearer token, then the one-time URL, whose 303 sets `ccp_vnc`.
 */
export async function desktopCookie(apiUrl: string, portal: "admin" | "user", hostId: string, token: string): Promise<string> {
  const res = await fetch(`${apiUrl}/v1/${portal}/hosts/${hostId}/vnc/session`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`vnc/session: ${res.status} ${await res.text()}`);
  const url = new URL(((await res.json()) as { url: string }).url);
  const redeemed = await fetch(`${apiUrl}${url.pathname}${url.search}`, { redirect: "manual" });
  const cookie = /^ccp_vnc=([^;]+)/.exec(redeemed.headers.get("set-cookie") ?? "")?.[1];
  if (redeemed.status !== 303 || !cookie) throw new Error(`ticket redemption: ${redeemed.status}`);
  return cookie;
}
