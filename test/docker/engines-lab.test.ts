import { connect, createServer, type Server } from "node:net";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerodeOptions, startEngines, stopEngines, type TestEngine } from "../../shared/test/engines.js";
import { waitUntil } from "../../shared/test/processes.js";

/**
 * The extra Docker engines of the multi-engine tests (test/lab/engines.sh, README "Extra Docker
 * engines"): two real dockerds, each in its own network namespace, reached over TCP with mutual
 * TLS; containers on an engine's management subnet are reachable from this machine's root
 * namespace, and cannot open connections to it. A machine that cannot run them fails here.
 */

const BASE = "cloud-cli-proxy/base:bookworm";
const LABEL = "cloud-cli-proxy.test";
const LABEL_VALUE = "engines-lab";
const BANNER_PORT = 7000;

let engines: TestEngine[] = [];
let started: string[] = [];
const clients = new Map<string, Docker>();
const servers: Server[] = [];
/** The banner containers' addresses (set by the management-subnet test). */
const bannerIps = new Map<string, string>();

function client(e: TestEngine): Docker {
  let d = clients.get(e.id);
  if (!d) clients.set(e.id, (d = new Docker(dockerodeOptions(e))));
  return d;
}

async function removeOurContainers(d: Docker): Promise<void> {
  const list = await d.listContainers({ all: true, filters: { label: [`${LABEL}=${LABEL_VALUE}`] } });
  await Promise.all(list.map((c) => d.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
}

const PROBE =
  `for my $t (@ARGV) { my $pid = fork(); if (!$pid) { my ($h, $p) = split /:/, $t;` +
  ` my $c = IO::Socket::INET->new(PeerAddr => $h, PeerPort => $p, Proto => "tcp", Timeout => 4);` +
  ` print(($c ? "open" : "fail") . " $t\\n"); exit 0 } push @k, $pid } waitpid($_, 0) for @k;`;

/** Parse a probe's "open|fail host:port" lines. */
function probeResults(out: string): Record<string, string> {
  return Object.fromEntries(
    out
      .replace(/\r/g, "")
      .split("\n")
      .filter((l) => /^(open|fail) /.test(l))
      .map((l) => [l.split(" ")[1]!, l.split(" ")[0]!]),
  );
}

/** Create and start a container on the engine's management network. */
async function runOnMgmt(e: TestEngine, cmd: string[]): Promise<Docker.Container> {
  const c = await client(e).createContainer({
    Image: BASE,
    Cmd: cmd,
    Tty: true,
    Labels: { [LABEL]: LABEL_VALUE },
    HostConfig: { NetworkMode: e.mgmt.network },
  });
  await c.start();
  return c;
}

/** Connect from the root namespace and read the first line; null while nothing answers. */
function readBanner(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let buf = "";
    const done = (v: string | null) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(5_000, () => done(null));
    s.on("data", (d) => {
      buf += String(d);
      if (buf.includes("\n")) done(buf.split("\n")[0]!);
    });
    s.on("error", () => done(null));
    s.on("end", () => done(buf.includes("\n") ? buf.split("\n")[0]! : null));
  });
}

/** The project's poll-with-deadline (shared/test/processes.ts) for probes that answer false or null while not yet. */
const until = <T>(what: string, fn: () => Promise<T | undefined | null | false>, ms = 30_000): Promise<T> =>
  waitUntil(what, ms, async () => (await fn()) || undefined);

beforeAll(async () => {
  try {
    ({ engines, started } = await startEngines(2, { images: [BASE] }));
  } catch (err) {
    throw new Error(
      `this machine cannot run the extra Docker engines the multi-engine tests need (test/lab/README.md "Extra Docker engines"): ${(err as Error).message}`,
    );
  }
  await Promise.all(engines.map((e) => removeOurContainers(client(e))));
});

afterAll(async () => {
  await Promise.all(engines.map((e) => removeOurContainers(client(e)).catch(() => undefined)));
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  // Only the engines this file started; ones that already ran belong to someone else.
  await stopEngines(started);
});

describe("extra Docker engines (test/lab/engines.sh)", () => {
  it("each engine answers over TCP with mutual TLS, and is its own dockerd", async () => {
    expect(engines.map((e) => e.id)).toEqual(["eng1", "eng2"]);
    const roots = new Set<string>();
    for (const e of engines) {
      expect(e.dockerHost).toBe(`tcp://${e.address}:2376`);
      const d = client(e);
      expect(String(await d.ping())).toBe("OK");
      const info = (await d.info()) as { DockerRootDir: string };
      roots.add(info.DockerRootDir);
      expect(info.DockerRootDir).not.toBe("/var/lib/docker");
      const img = (await d.getImage(BASE).inspect()) as { Id: string };
      expect(img.Id).toMatch(/^sha256:/);
    }
    expect(roots.size).toBe(2);
  });

  it("refuses a client without the client certificate", async () => {
    for (const e of engines) {
      const anonymous = new Docker({ host: e.address, port: e.port, protocol: "https", ca: e.tls.ca });
      await expect(anonymous.ping()).rejects.toThrow();
      // The same engine with the client pair: the refusal above is about the certificate.
      expect(String(await client(e).ping())).toBe("OK");
    }
  });

  it("a container on an engine's management subnet accepts TCP from the root namespace", async () => {
    const script =
      `my $s = IO::Socket::INET->new(LocalPort => ${BANNER_PORT}, Listen => 5, ReuseAddr => 1) or die "listen: $!";` +
      ` while (my $c = $s->accept) { print $c "banner $ARGV[0]\\n"; close $c }`;
    await Promise.all(
      engines.map(async (e) => {
        const c = await runOnMgmt(e, ["perl", "-MIO::Socket::INET", "-e", script, e.id]);
        const info = await c.inspect();
        const ip = info.NetworkSettings.Networks[e.mgmt.network]?.IPAddress ?? "";
        const [net] = e.mgmt.subnet.split("/");
        expect(ip.split(".").slice(0, 3).join(".")).toBe(net!.split(".").slice(0, 3).join("."));
        const line = await until(`the banner of ${e.id}'s container at ${ip}:${BANNER_PORT}`, () => readBanner(ip, BANNER_PORT));
        expect(line).toBe(`banner ${e.id}`);
        bannerIps.set(e.id, ip);
      }),
    );
  });

  it("a container on an engine cannot open connections to the control plane or the engine itself", async () => {
    // A listener on each engine's control-plane address (the root namespace's end of its veth).
    const accepted: string[] = [];
    const ports = new Map<string, number>();
    for (const e of engines) {
      const srv = createServer((sock) => {
        accepted.push(`${e.controlPlaneAddress} <- ${sock.remoteAddress}`);
        sock.destroy();
      });
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once("error", reject);
        srv.listen(0, e.controlPlaneAddress, () => resolve());
      });
      const addr = srv.address();
      ports.set(e.id, typeof addr === "object" && addr ? addr.port : 0);
    }
    // The listeners answer from the root namespace (so a refusal below is the firewall's doing).
    for (const e of engines) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = connect({ host: e.controlPlaneAddress, port: ports.get(e.id)! }, () => {
          s.destroy();
          resolve(true);
        });
        s.on("error", () => resolve(false));
      });
      expect(ok).toBe(true);
    }
    const rootConnections = accepted.length;

    // Each target is probed in its own process; "open" or "fail"; the loopback listener is the
    // control that shows the probe itself works inside the container.
    const probe =
      `my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 7001, Listen => 5, ReuseAddr => 1) or die "listen: $!"; my @k;` +
      PROBE;
    await Promise.all(
      engines.map(async (e) => {
        const others = engines.filter((o) => o.id !== e.id);
        const targets = [
          "127.0.0.1:7001",
          `${e.controlPlaneAddress}:${ports.get(e.id)}`,
          `${e.address}:2376`,
          `${e.mgmt.gateway}:2376`,
          ...others.map((o) => `${o.controlPlaneAddress}:${ports.get(o.id)}`),
          ...others.map((o) => `${o.address}:2376`),
        ];
        const c = await runOnMgmt(e, ["perl", "-MIO::Socket::INET", "-e", probe, ...targets]);
        const { StatusCode } = (await c.wait()) as { StatusCode: number };
        const out = String(await c.logs({ stdout: true, stderr: true }));
        expect(StatusCode, out).toBe(0);
        expect(probeResults(out)).toEqual(Object.fromEntries(targets.map((t, i) => [t, i === 0 ? "open" : "fail"])));
      }),
    );
    expect(accepted.slice(rootConnections)).toEqual([]);
  });

  it("a container on the main engine cannot reach an engine's management subnet", async () => {
    // Docker on the main engine would masquerade it to the control plane's address, which the
    // engine admits; engines.sh drops forwarding to the engines' veths in the root namespace.
    const targets = engines.map((e) => `${bannerIps.get(e.id)}:${BANNER_PORT}`);
    expect(targets.every((t) => !t.startsWith("undefined"))).toBe(true);
    // The banners still answer the root namespace itself.
    for (const e of engines) expect(await readBanner(bannerIps.get(e.id)!, BANNER_PORT)).toBe(`banner ${e.id}`);
    const main = new Docker();
    const c = await main.createContainer({
      Image: BASE,
      Cmd: ["perl", "-MIO::Socket::INET", "-e", `my @k; ${PROBE}`, ...targets],
      Tty: true,
      Labels: { [LABEL]: LABEL_VALUE },
    });
    try {
      await c.start();
      const { StatusCode } = (await c.wait()) as { StatusCode: number };
      const out = String(await c.logs({ stdout: true, stderr: true }));
      expect(StatusCode, out).toBe(0);
      expect(probeResults(out)).toEqual(Object.fromEntries(targets.map((t) => [t, "fail"])));
    } finally {
      await c.remove({ force: true });
    }
  });
});
