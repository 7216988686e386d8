/**
 * 200 concurrent sessions through the SSH proxy to one host, held for 60 s, with zero failures,
 * and the proxy's memory (process.memoryUsage() of the proxy process) before, during and after.
 *
 * The clients are ssh2 `Client`s in this process rather than 200 OpenSSH processes: on two cores
 * 200 ssh processes (plus their handshakes) would measure the machine more than the proxy. Each
 * client authenticates with the host password (pinning the proxy's host key), runs `cat` on the
 * host, and every 10 s sends a line that must come back within 10 s: a session counts as alive
 * only if every echo arrived. Connections are opened 8 at a time (the host's sshd drops
 * unauthenticated connections beyond MaxStartups 10). SSH_MAX_SESSIONS_PER_HOST is raised to 250
 * for this run (default 10).
 *
 *   npx tsx bench/ssh-concurrency.ts [--sessions 200] [--hold 60]
 */
import { parseArgs } from "node:util";
import { and, eq, sql } from "drizzle-orm";
import ssh2 from "ssh2";
import { events } from "../shared/db/schema/index.js";
import { type BenchHost, type BenchStack, startBenchStack } from "./lib/stack.js";

const { values } = parseArgs({
  options: { sessions: { type: "string", default: "200" }, hold: { type: "string", default: "60" } },
});
const SESSIONS = Number(values.sessions);
const HOLD_S = Number(values.hold);
const PING_EVERY_MS = 10_000;
const IN_FLIGHT = 8;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (b: number) => (b / 1024 / 1024).toFixed(1);

interface Held {
  i: number;
  client: ssh2.Client;
  stream: ssh2.ClientChannel;
  received: string;
  closedEarly: boolean;
  errors: string[];
}

function open(stack: BenchStack, host: BenchHost, i: number, pinned: string): Promise<Held> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    const fail = (err: Error) => reject(new Error(`session ${i}: ${err.message}`));
    client.once("error", fail);
    client.once("ready", () => {
      client.exec("cat", (err, stream) => {
        if (err) return fail(err);
        client.off("error", fail);
        const h: Held = { i, client, stream, received: "", closedEarly: false, errors: [] };
        client.on("error", (e) => h.errors.push(e.message));
        stream.on("data", (d: Buffer) => (h.received += d.toString()));
        stream.stderr.on("data", (d: Buffer) => h.errors.push(`stderr: ${d.toString().trim()}`));
        stream.on("close", () => (h.closedEarly = true));
        resolve(h);
      });
    });
    client.connect({
      host: "127.0.0.1",
      port: stack.proxy.port,
      username: host.shortId,
      password: host.password,
      readyTimeout: 30_000,
      hostVerifier: (key: Buffer) => key.toString("base64") === pinned,
    });
  });
}

async function main() {
  let stack: BenchStack | undefined;
  try {
    stack = await startBenchStack({ sshdEnv: { SSH_MAX_SESSIONS_PER_HOST: "250" } });
    // Every session is an sshd pair plus `cat` on the host: raise the host's pids limit (default 1024).
    const host = await stack.createHost({ pids_limit: 4096 });
    const pinned = stack.proxy.hostKey.split(/\s+/)[1]!;

    await sleep(1000);
    const before = await stack.proxy.memory();
    console.log(`proxy before: rss ${mb(before.rss)} MiB, heap ${mb(before.heapUsed)} MiB`);

    const t0 = Date.now();
    const held: Held[] = [];
    const failures: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < SESSIONS) {
          const i = next++;
          try {
            held.push(await open(stack!, host, i, pinned));
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
      }),
    );
    console.log(`${held.length}/${SESSIONS} sessions open in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${failures.length} failures`);
    const opened = await stack.proxy.memory();
    console.log(`proxy with ${held.length} open: rss ${mb(opened.rss)} MiB, heap ${mb(opened.heapUsed)} MiB`);

    // Hold, pinging every session every 10 s.
    const samples: number[] = [opened.rss];
    let round = 0;
    const holdUntil = Date.now() + HOLD_S * 1000;
    while (Date.now() < holdUntil) {
      round++;
      for (const h of held) h.stream.write(`ping-${h.i}-${round}\n`);
      await sleep(Math.min(PING_EVERY_MS, Math.max(0, holdUntil - Date.now())));
      samples.push((await stack.proxy.memory()).rss);
    }
    // Every session must have echoed every ping and still be open.
    await sleep(1000);
    for (const h of held) {
      const want = Array.from({ length: round }, (_, k) => `ping-${h.i}-${k + 1}\n`).join("");
      if (h.closedEarly) failures.push(`session ${h.i}: closed early`);
      else if (h.received !== want) failures.push(`session ${h.i}: echoed ${JSON.stringify(h.received.slice(-40))}, want ${round} pings`);
      if (h.errors.length) failures.push(`session ${h.i}: ${h.errors.join("; ")}`);
    }
    const during = Math.max(...samples);
    console.log(`held ${HOLD_S} s, ${round} ping rounds; proxy rss during: max ${mb(during)} MiB (samples ${samples.map(mb).join(", ")})`);

    for (const h of held) {
      h.stream.end();
      h.client.end();
    }
    await sleep(5000);
    const after = await stack.proxy.memory();
    console.log(`proxy after all closed (+5 s): rss ${mb(after.rss)} MiB, heap ${mb(after.heapUsed)} MiB`);

    const count = async (type: string) =>
      (
        await stack!.database.db
          .select({ n: sql<number>`count(*)::int` })
          .from(events)
          .where(and(eq(events.type, type), eq(events.hostId, host.id)))
      )[0]!.n;
    console.log(`events: ssh.session.opened ${await count("ssh.session.opened")}, ssh.session.closed ${await count("ssh.session.closed")}`);
    console.log(
      `per session: ~${((opened.rss - before.rss) / Math.max(1, held.length) / 1024).toFixed(0)} KiB rss while open; ` +
        `failures: ${failures.length}${failures.length ? `\n  ${failures.slice(0, 20).join("\n  ")}` : ""}`,
    );
    if (failures.length) process.exitCode = 1;
  } finally {
    await stack?.close();
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
