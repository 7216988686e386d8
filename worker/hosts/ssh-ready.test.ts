import { createServer, type Server } from "node:net";
import ssh2 from "ssh2";
import { afterEach, describe, expect, it } from "vitest";
import { generateEd25519KeyPair } from "../../shared/ssh/keygen.js";
import { probeSsh } from "./ssh-ready.js";

/** probeSsh against servers on loopback (worker/hosts/steps.ts waitSsh retries it with a back-off). */
const hostKey = generateEd25519KeyPair("host-test");
const otherKey = generateEd25519KeyPair("host-other");
const client = generateEd25519KeyPair("proxy-test");
const servers: { close(cb?: () => void): unknown }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(() => r(undefined)))));
});

const listen = (s: Server | ssh2.Server): Promise<number> =>
  new Promise((resolve) => {
    servers.push(s);
    s.listen(0, "127.0.0.1", () => resolve((s.address() as { port: number }).port));
  });

function sshServer(): ssh2.Server {
  return new ssh2.Server({ hostKeys: [hostKey.privateKey] }, (conn) => {
    conn.on("authentication", (ctx) => (ctx.method === "publickey" ? ctx.accept() : ctx.reject(["publickey"])));
    conn.on("error", () => {});
  });
}

const opts = (port: number, pinned = hostKey.publicKey) => ({
  host: "127.0.0.1",
  port,
  username: "workspace",
  privateKey: client.privateKey,
  pinnedHostKey: pinned,
  timeoutMs: 5000,
  connectTimeoutMs: 250,
});

describe("probeSsh", () => {
  it("is ready when sshd presents the pinned key and takes the internal key", async () => {
    expect(await probeSsh(opts(await listen(sshServer())))).toBe(true);
  });

  it("refuses a host key that is not the pinned one", async () => {
    expect(await probeSsh(opts(await listen(sshServer()), otherKey.publicKey))).toBe(false);
  });

  it("a closed port ends the attempt at the TCP connect", async () => {
    const port = await listen(createServer());
    await new Promise((r) => servers.pop()!.close(() => r(undefined)));
    expect(await probeSsh(opts(port))).toBe(false);
  });

  it("a listener that never speaks SSH fails within the attempt's bound", async () => {
    const held: import("node:net").Socket[] = [];
    const silent = createServer((sock) => void held.push(sock));
    servers.push({ close: (cb?: () => void) => (held.forEach((h) => h.destroy()), cb?.()) });
    const port = await listen(silent);
    expect(await probeSsh({ ...opts(port), timeoutMs: 300 })).toBe(false);
  });
});
