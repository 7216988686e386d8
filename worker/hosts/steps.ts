import { and, asc, eq, ne, sql } from "drizzle-orm";
import { secretAt } from "../../shared/crypto/secrets.js";
import { egressIps, hostEgressBindings, hosts, sshKeys, users, type HostRow } from "../../shared/db/schema/index.js";
import { generateEd25519KeyPair } from "../../shared/ssh/keygen.js";
import { redisKey } from "../../shared/redis.js";
import type { WorkerDeps } from "../deps.js";
import type { ContainerState } from "../runtime/runtime.js";
import { TaskError } from "../tasks/task-error.js";
import { renderAuthorizedKeys } from "./authorized-keys.js";
import { diskDirOf, homeDevice, runDiskOp } from "./disk.js";
import { gatewayName, HOME_DIR, homeVolumeName, HOST_UID, hostContainerName, labelsFor } from "./names.js";
import { activeUpload, applyGatewayLive, gatewayHasFiles, nextGeneration, readGatewayStatus, waitGatewayReady } from "../network/gateway.js";
import { renderGatewayFiles } from "../network/gateway-files.js";
import { type Networks, planHostGateway } from "../network/host-egress.js";
import type { GatewayPlan } from "../network/plan.js";

/** The building blocks of every host flow (docs/architecture.md#host-flows). Each one is idempotent. */

export async function loadHost(deps: WorkerDeps, hostId: string | null): Promise<HostRow> {
  if (!hostId) throw new TaskError("host_not_found", "the task names no host");
  const [host] = await deps.db.select().from(hosts).where(eq(hosts.id, hostId));
  if (!host) throw new TaskError("host_not_found", "the host no longer exists");
  return host;
}

export async function setHostStatus(
  deps: WorkerDeps,
  hostId: string,
  patch: Partial<typeof hosts.$inferInsert>,
  opts: { unlessDeleting?: boolean } = { unlessDeleting: true },
): Promise<boolean> {
  const where = opts.unlessDeleting
    ? and(eq(hosts.id, hostId), sqlNotDeleting())
    : eq(hosts.id, hostId);
  const rows = await deps.db.update(hosts).set({ ...patch, updatedAt: new Date() }).where(where).returning({ id: hosts.id });
  // The live streams show host status as it moves, not at the task's end (docs/architecture.md#live-updates).
  if (rows.length) deps.notifyLive({ kind: "host", id: hostId });
  return rows.length > 0;
}

// A DELETE can land while a task runs: never overwrite `deleting` (only the API sets it).
const sqlNotDeleting = () => ne(hosts.status, "deleting");

export async function checkImages(deps: WorkerDeps): Promise<void> {
  for (const ref of [deps.config.HOST_IMAGE, deps.config.GATEWAY_IMAGE]) {
    if (!(await deps.runtime.imageExists(ref))) {
      throw new TaskError("image_missing", `image ${ref} is not present on the engine (run deploy/images/build.sh)`);
    }
  }
}

/** The sshd host key and the proxy's internal key: generated once, stored encrypted, kept across rebuilds. */
export async function prepareKeys(deps: WorkerDeps, host: HostRow): Promise<HostRow> {
  if (host.hostKeyPublic && host.hostKeyPrivateEnc && host.internalKeyPublic && host.internalKeyPrivateEnc) return host;
  const hostKey = generateEd25519KeyPair(`host-${host.shortId}`);
  const internal = generateEd25519KeyPair(`cloud-cli-proxy-${host.shortId}`);
  // Only fill what is missing, so a redelivered job never replaces a key that is already pinned.
  const [row] = await deps.db
    .update(hosts)
    .set({
      hostKeyPublic: host.hostKeyPublic ?? hostKey.publicKey,
      hostKeyPrivateEnc: host.hostKeyPrivateEnc ?? deps.secrets.encrypt(hostKey.privateKey, secretAt.host(host.id, "host_key_private_enc")),
      internalKeyPublic: host.internalKeyPublic ?? internal.publicKey,
      internalKeyPrivateEnc:
        host.internalKeyPrivateEnc ?? deps.secrets.encrypt(internal.privateKey, secretAt.host(host.id, "internal_key_private_enc")),
      updatedAt: new Date(),
    })
    .where(eq(hosts.id, host.id))
    .returning();
  return row!;
}

/** The size a new home gets: the host's own, else the engine's default (0 = no cap). */
export const diskLimitOf = (deps: WorkerDeps, host: Pick<HostRow, "diskLimitMb">) => host.diskLimitMb ?? deps.config.HOST_DISK_LIMIT_MB;

// Hosts whose home predates the disk cap: logged once per worker process, not on every start.
const legacyHomesLogged = new Set<string>();

/**
 * The home volume, on its own fixed-size filesystem (worker/hosts/disk.ts). Runs before every
 * start of the host container (create, start, ensure-running, rebuild): after a reboot of the
 * engine's machine the loop mounts are gone, and the bind volume cannot start without them.
 * A home created before the cap (a plain volume) is kept as it is, uncapped: its data is never
 * moved or lost; a rebuild with wipe-home puts it on a capped disk.
 */
export async function prepareVolume(deps: WorkerDeps, host: HostRow): Promise<void> {
  const name = homeVolumeName(host.id);
  const existing = await deps.runtime.inspectVolume(name);
  if (existing) {
    const dir = diskDirOf(existing, host.id);
    if (dir) {
      await runDiskOp(deps, "mount", dir, host.id);
    } else if (!legacyHomesLogged.has(host.id)) {
      legacyHomesLogged.add(host.id);
      deps.logger.warn({ hostId: host.id, volume: name }, "home volume predates the disk cap: kept as it is, uncapped");
    }
    return;
  }
  const mb = diskLimitOf(deps, host);
  if (mb === 0) {
    await deps.runtime.ensureVolume(name, labelsFor("home", host.id));
    return;
  }
  const dir = deps.config.HOST_DISK_DIR;
  await runDiskOp(deps, "ensure", dir, host.id, mb);
  await deps.runtime.ensureVolume(name, labelsFor("home", host.id), { bindDevice: homeDevice(dir, host.id) });
}

/**
 * Remove a home: the volume, then its filesystem (unmounted, image deleted). Idempotent: with the
 * volume already gone (a redelivered delete) the image is still looked for where it would be.
 */
export async function removeHome(deps: WorkerDeps, hostId: string, diskLimitMb: number | null | undefined): Promise<void> {
  const name = homeVolumeName(hostId);
  const existing = await deps.runtime.inspectVolume(name);
  const dir = existing ? diskDirOf(existing, hostId) : null;
  await deps.runtime.removeVolume(name);
  if (dir) await runDiskOp(deps, "remove", dir, hostId);
  else if (!existing && (deps.config.HOST_DISK_LIMIT_MB > 0 || (diskLimitMb ?? 0) > 0)) {
    await runDiskOp(deps, "remove", deps.config.HOST_DISK_DIR, hostId);
  }
}

export async function ensureNetworks(deps: WorkerDeps) {
  // Workers that start together (compose --scale worker=3) would each create the networks:
  // Docker does not enforce unique names, so creation is serialised across workers with a
  // transaction-scoped advisory lock (the runtime also repairs duplicates left by older releases).
  const { mgmt, underlay } = await deps.db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`ccp:networks:${deps.config.MGMT_NETWORK}`}))`);
    return {
      mgmt: await deps.runtime.ensureNetwork(deps.config.MGMT_NETWORK, { subnet: deps.config.MGMT_SUBNET }),
      underlay: await deps.runtime.ensureNetwork(deps.config.EGRESS_UNDERLAY_NETWORK, {}),
    };
  });
  // The SSH proxy refuses `ssh -L` to these addresses (the Docker host, i.e. the control plane);
  // it cannot ask Docker itself, so the worker publishes them, one field per engine
  // (docs/engines.md: every engine machine's bridges are refused alike).
  await deps.redis
    .hset(
      redisKey(deps.config.REDIS_PREFIX, "engine-networks"),
      deps.config.ENGINE_ID,
      JSON.stringify({
        gateways: [mgmt.gateway, underlay.gateway],
        subnets: [mgmt.subnet, underlay.subnet],
        // What a worker of another engine needs to bring a host up here (a move, worker/processors/host-move.ts).
        mgmt: { name: deps.config.MGMT_NETWORK, subnet: mgmt.subnet },
        underlay: { name: deps.config.EGRESS_UNDERLAY_NETWORK },
      }),
    )
    .catch(() => {});
  return { mgmt, underlay };
}

/** `EGRESS_REQUIRED=true`: a host starts only with a binding to an available egress (docs/architecture.md#host-flows). */
export async function assertEgressBindingIfRequired(deps: WorkerDeps, host: HostRow): Promise<void> {
  if (!deps.config.EGRESS_REQUIRED) return;
  const [row] = await deps.db
    .select({ status: egressIps.status })
    .from(hostEgressBindings)
    .innerJoin(egressIps, eq(egressIps.id, hostEgressBindings.egressIpId))
    .where(eq(hostEgressBindings.hostId, host.id));
  if (!row || row.status !== "available") {
    throw new TaskError("egress_binding_missing", "EGRESS_REQUIRED is set and the host has no usable egress binding");
  }
}

/**
 * Create (if missing) and start the gateway with the configuration of the host's mode (docs/egress.md#gateway,
 * docs/egress.md#modes): the worker renders every file and uploads it to /etc/ccp/active/ before the first start;
 * a gateway that already runs with other files gets them by a live apply. Then `ccp-gateway status`
 * is polled every 200 ms until `ready` (else `tunnel_setup_failed`).
 */
export async function startGateway(
  deps: WorkerDeps,
  host: HostRow,
  // `apply` plans as a live apply does: blocked unless a binding is available (a warm-pool member).
  opts: { at?: "start" | "apply" } = {},
): Promise<{ state: ContainerState; mgmtAddress: string; plan: GatewayPlan; net: Networks }> {
  const net = await ensureNetworks(deps);
  const plan = await planHostGateway(deps, host, opts.at ?? "start", net);
  const name = gatewayName(host.id);
  const existing = await deps.runtime.inspectContainer(name);
  let generation: number | undefined = nextGeneration();
  let files = renderGatewayFiles(plan.config, generation);
  if (existing?.running) {
    // Ready and configured as planned already (a host restarted after its gateway): keep it as it
    // is. Otherwise the plan goes in by a live apply, under the kill switch.
    const status = await readGatewayStatus(deps, name);
    if (status?.status === "ready" && (await gatewayHasFiles(deps, name, files))) {
      generation = undefined;
    } else {
      generation = nextGeneration(status?.generation ?? 0);
      files = renderGatewayFiles(plan.config, generation);
      await applyGatewayLive(deps, name, files, generation);
    }
  }
  await deps.runtime.createGateway({
    name,
    image: deps.config.GATEWAY_IMAGE,
    hostname: host.shortId,
    labels: labelsFor("gateway", host.id),
    networks: [deps.config.EGRESS_UNDERLAY_NETWORK, deps.config.MGMT_NETWORK],
    files: [activeUpload(files)],
  });
  let state = await deps.runtime.inspectContainer(name);
  if (!state) throw new TaskError("container_start_failed", "the gateway container vanished after creation");
  if (!state.running) await deps.runtime.startContainer(name);
  await waitGatewayReady(deps, name, { generation });
  state = (await deps.runtime.inspectContainer(name))!;
  const mgmtAddress = state.networks[deps.config.MGMT_NETWORK];
  if (!mgmtAddress) throw new TaskError("container_start_failed", "the gateway has no management address");
  return { state, mgmtAddress, plan, net };
}

/** Create (if missing) and start the host container in the gateway's network namespace. */
export async function startHostContainer(deps: WorkerDeps, host: HostRow, gateway: ContainerState): Promise<void> {
  const name = hostContainerName(host.id);
  await deps.runtime.createHost({
    name,
    image: deps.config.HOST_IMAGE,
    gatewayName: gatewayName(host.id),
    labels: labelsFor("host", host.id),
    env: [`TZ=${host.timezone}`],
    memoryMb: host.memoryLimitMb,
    cpus: Number(host.cpuLimit),
    pids: host.pidsLimit,
    volume: { name: homeVolumeName(host.id), target: HOME_DIR },
    tmpfsMb: deps.config.HOST_TMPFS_MB,
    // The writable layer gets the home's cap where the storage driver can enforce it.
    rootfsSizeMb: diskLimitOf(deps, host) || undefined,
    files: [
      {
        dir: "/",
        dirs: [{ name: "etc/ssh/ccp", mode: 0o755 }],
        files: [
          { name: "etc/ssh/ccp/ssh_host_ed25519_key", mode: 0o600, content: deps.secrets.decrypt(host.hostKeyPrivateEnc!, secretAt.host(host.id, "host_key_private_enc")) },
          { name: "etc/ssh/ccp/ssh_host_ed25519_key.pub", mode: 0o644, content: `${host.hostKeyPublic}\n` },
          {
            name: "etc/ssh/ccp/proxy_authorized_keys",
            mode: 0o644,
            content: `restrict,pty,port-forwarding ${host.internalKeyPublic}\n`,
          },
        ],
      },
    ],
  });
  const state = await deps.runtime.inspectContainer(name);
  if (!state) throw new TaskError("container_start_failed", "the host container vanished after creation");
  // A host started before its gateway sits in a dead network namespace: restart it.
  if (state.running && gateway.startedAt && state.startedAt && state.startedAt < gateway.startedAt) {
    await deps.runtime.restartContainer(name, deps.config.CONTAINER_STOP_GRACE_SECONDS);
  } else if (!state.running) {
    await deps.runtime.startContainer(name);
  }
}

/** sshd answers on the management address with the pinned key, within SSH_READY_TIMEOUT_SECONDS. */
export async function waitSsh(deps: WorkerDeps, host: HostRow, mgmtAddress: string): Promise<void> {
  const deadline = Date.now() + deps.config.SSH_READY_TIMEOUT_SECONDS * 1000;
  const privateKey = deps.secrets.decrypt(host.internalKeyPrivateEnc!, secretAt.host(host.id, "internal_key_private_enc"));
  for (;;) {
    const ok = await deps.sshProbe({
      host: mgmtAddress,
      username: deps.config.HOST_SSH_USER,
      privateKey,
      pinnedHostKey: host.hostKeyPublic!,
      timeoutMs: 5000,
    });
    if (ok) return;
    if (Date.now() > deadline) throw new TaskError("ssh_not_ready", "sshd did not present the pinned host key in time");
    await new Promise((res) => setTimeout(res, 1000));
  }
}

// Runs as the host user, never root: the home belongs to the user, who could plant a symlink at
// ~/.ssh to make a root writer clobber another file. The script is fixed; keys arrive on stdin.
const WRITE_AUTHORIZED_KEYS = [
  "set -eu",
  'umask 077',
  'mkdir -p "$1/.ssh"',
  'chmod 700 "$1/.ssh"',
  // A FIFO planted at the temporary name would block the writer until the exec times out.
  'rm -f "$1/.ssh/.authorized_keys.ccp-tmp"',
  'cat > "$1/.ssh/.authorized_keys.ccp-tmp"',
  'mv -f "$1/.ssh/.authorized_keys.ccp-tmp" "$1/.ssh/authorized_keys"',
].join("\n");

/** Largest ~/.ssh/authorized_keys the worker reads (thousands of keys; anything bigger is refused). */
export const AUTHORIZED_KEYS_MAX_BYTES = 256 * 1024;

/**
 * Read ~/.ssh/authorized_keys as the host user, never following what the tenant may have put
 * there (issue 10 §2: a symlink to /dev/zero grew the worker to 3.75 GiB in 32 s). `dd` opens it
 * with O_NOFOLLOW and O_NONBLOCK (a symlink fails, a FIFO cannot block) and reads at most one byte
 * past the limit. Exit 3: not a regular file — the rename in WRITE_AUTHORIZED_KEYS replaces the
 * entry itself (rename never follows a link). Exit 2: absent.
 */
const READ_AUTHORIZED_KEYS = [
  'f="$1/.ssh/authorized_keys"',
  'if [ -L "$f" ]; then exit 3; fi',
  'if [ ! -e "$f" ]; then exit 2; fi',
  'if [ ! -f "$f" ]; then exit 3; fi',
  `exec dd if="$f" iflag=nofollow,nonblock,fullblock bs=${AUTHORIZED_KEYS_MAX_BYTES + 1} count=1 status=none`,
].join("\n");

/** Write the managed block of the host user's authorized_keys from the user's keys (docs/architecture.md#host-flows). */
export async function syncKeys(deps: WorkerDeps, host: HostRow, opts: { freshHome?: boolean } = {}): Promise<number> {
  const keys = await deps.db
    .select({ id: sshKeys.id, publicKey: sshKeys.publicKey })
    .from(sshKeys)
    .where(eq(sshKeys.userId, host.userId))
    .orderBy(asc(sshKeys.createdAt), asc(sshKeys.id));
  const name = hostContainerName(host.id);
  const user = `${HOST_UID}:${HOST_UID}`;
  // A warm-pool member's home that no tenant has had yet (docs/architecture.md#warm-pool) has no
  // file to keep: one exec fewer on the claim's path.
  const read = opts.freshHome
    ? { exitCode: 2, stdout: "", stderr: "" }
    : await deps.runtime.exec(name, ["sh", "-c", READ_AUTHORIZED_KEYS, "sh", HOME_DIR], {
        user,
        timeoutMs: 10_000,
        maxOutputBytes: AUTHORIZED_KEYS_MAX_BYTES + 4096,
      });
  // Anything but a clean read (absent, a link or special file, or swapped for one mid-read and
  // refused by dd) starts the file afresh: the user's own lines in such a "file" are not lines.
  const existing = read.exitCode === 0 ? read.stdout : "";
  if (Buffer.byteLength(existing) > AUTHORIZED_KEYS_MAX_BYTES) {
    throw new TaskError("host_file_rejected", `~/.ssh/authorized_keys in the host is larger than ${AUTHORIZED_KEYS_MAX_BYTES} bytes`);
  }
  const next = renderAuthorizedKeys(existing, keys);
  if (next !== existing) {
    const w = await deps.runtime.exec(name, ["sh", "-c", WRITE_AUTHORIZED_KEYS, "sh", HOME_DIR], { user, stdin: next });
    if (w.exitCode !== 0 && /No space left on device|Disk quota exceeded/.test(w.stderr)) {
      throw new TaskError("host_disk_full", "the host's home is full: authorized_keys could not be written");
    }
    if (w.exitCode !== 0) {
      throw new TaskError("internal_error", `could not write authorized_keys (exit ${w.exitCode})`);
    }
  }
  return keys.length;
}

export async function stopContainers(deps: WorkerDeps, hostId: string): Promise<void> {
  const grace = deps.config.CONTAINER_STOP_GRACE_SECONDS;
  await deps.runtime.stopContainer(hostContainerName(hostId), grace);
  await deps.runtime.stopContainer(gatewayName(hostId), grace);
}

/** Both containers running, and the host started after its gateway (docs/architecture.md#host-flows "no-op if running"). */
export async function isUpAndHealthy(deps: WorkerDeps, hostId: string): Promise<boolean> {
  const gw = await deps.runtime.inspectContainer(gatewayName(hostId));
  const h = await deps.runtime.inspectContainer(hostContainerName(hostId));
  return Boolean(
    gw?.running && h?.running && gw.startedAt && h.startedAt && h.startedAt.getTime() >= gw.startedAt.getTime(),
  );
}

export async function ownerOf(deps: WorkerDeps, host: HostRow) {
  const [u] = await deps.db.select().from(users).where(eq(users.id, host.userId));
  return u;
}

export async function removeUserIfLastHostGone(deps: WorkerDeps, userId: string): Promise<boolean> {
  const [u] = await deps.db.select().from(users).where(eq(users.id, userId));
  if (!u || u.deletedAt === null) return false;
  const [other] = await deps.db.select({ id: hosts.id }).from(hosts).where(eq(hosts.userId, userId));
  if (other) return false;
  await deps.db.delete(users).where(and(eq(users.id, userId)));
  return true;
}


