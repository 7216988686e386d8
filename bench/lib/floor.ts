/**
 * The floor of a host create (issue 12): what Docker alone needs to make and start a host's two
 * containers and have sshd answer — home volume + gateway (same settings, networks attached and
 * config uploaded before start) + host container (same settings, keys uploaded), created and
 * started back to back, without waiting for the gateway's ready file, until the `SSH-2.0-…`
 * banner is read on the gateway's management address. Same adapter calls as the worker
 * (worker/runtime/docker), no queue, no database, no readiness checks. Used by
 * bench/host-create.ts and bench/egress-create.ts as their same-run baseline.
 */
import { randomUUID } from "node:crypto";
import { connect } from "node:net";
import { generateEd25519KeyPair } from "../../shared/ssh/keygen.js";
import { removeInstanceObjects, TEST_MGMT_NETWORK, TEST_UNDERLAY_NETWORK } from "../../shared/test/worker-harness.js";
import { gatewayName, HOME_DIR, homeVolumeName, hostContainerName, labelsFor } from "../../worker/hosts/names.js";
import type { Runtime } from "../../worker/runtime/runtime.js";

const POLL_MS = 20;
const TIMEOUT_MS = 120_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One attempt to read the SSH identification line; resolves null on any failure. */
function tryBanner(ip: string): Promise<string | null> {
  return new Promise((resolve) => {
    const s = connect(22, ip);
    const done = (v: string | null) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(1000, () => done(null));
    s.once("data", (d) => done(String(d).startsWith("SSH-") ? String(d).split("\r\n")[0]! : null));
    s.once("error", () => done(null));
    s.once("close", () => done(null));
  });
}

/** Poll the gateway's management address, then its port 22, until the banner is read; ms since t0. */
export async function waitBanner(runtime: Runtime, gw: string, t0: number, mgmtNetwork = TEST_MGMT_NETWORK): Promise<number> {
  let ip: string | undefined;
  while (Date.now() - t0 < TIMEOUT_MS) {
    if (!ip) ip = (await runtime.inspectContainer(gw))?.networks[mgmtNetwork];
    if (ip && (await tryBanner(ip))) return Date.now() - t0;
    await sleep(POLL_MS);
  }
  throw new Error(`no sshd banner from ${gw} within ${TIMEOUT_MS} ms`);
}

/**
 * One floor run on `runtime` (a Docker runtime with an instance label of its own, so that
 * `removeInstanceObjects(instance)` removes what it made); returns create → banner in ms.
 */
export async function createFloor(
  runtime: Runtime,
  instance: string,
  images: { HOST_IMAGE: string; GATEWAY_IMAGE: string; HOST_TMPFS_MB: number },
): Promise<number> {
  const id = randomUUID();
  const hostKey = generateEd25519KeyPair("bench-host");
  const internal = generateEd25519KeyPair("bench-proxy");
  const mgmt = await runtime.ensureNetwork(TEST_MGMT_NETWORK, {});
  const gw = gatewayName(id);
  const t0 = Date.now();
  await runtime.ensureVolume(homeVolumeName(id), labelsFor("home", id));
  await runtime.createGateway({
    name: gw,
    image: images.GATEWAY_IMAGE,
    hostname: id.slice(0, 6),
    labels: labelsFor("gateway", id),
    networks: [TEST_UNDERLAY_NETWORK, TEST_MGMT_NETWORK],
    files: [
      {
        dir: "/",
        dirs: [{ name: "etc/ccp", mode: 0o700 }],
        files: [{ name: "etc/ccp/gateway.env", mode: 0o600, content: `MGMT_PEER=${mgmt.gateway}\n` }],
      },
    ],
  });
  await runtime.startContainer(gw);
  await runtime.createHost({
    name: hostContainerName(id),
    image: images.HOST_IMAGE,
    gatewayName: gw,
    labels: labelsFor("host", id),
    env: ["TZ=UTC"],
    memoryMb: 4096,
    cpus: 2,
    pids: 1024,
    volume: { name: homeVolumeName(id), target: HOME_DIR },
    tmpfsMb: images.HOST_TMPFS_MB,
    files: [
      {
        dir: "/",
        dirs: [{ name: "etc/ssh/ccp", mode: 0o755 }],
        files: [
          { name: "etc/ssh/ccp/ssh_host_ed25519_key", mode: 0o600, content: hostKey.privateKey },
          { name: "etc/ssh/ccp/ssh_host_ed25519_key.pub", mode: 0o644, content: `${hostKey.publicKey}\n` },
          { name: "etc/ssh/ccp/proxy_authorized_keys", mode: 0o644, content: `restrict,pty,port-forwarding ${internal.publicKey}\n` },
        ],
      },
    ],
  });
  await runtime.startContainer(hostContainerName(id));
  const banner = await waitBanner(runtime, gw, t0);
  removeInstanceObjects(instance);
  return banner;
}
