import { once } from "node:events";
import { PassThrough, Transform, type TransformCallback } from "node:stream";
import Docker from "dockerode";
import type { DockerConnection } from "../../engine.js";
import { buildTar, firstFileOfTar } from "../tar.js";
import {
  ContainerOperationError,
  EXEC_OUTPUT_LIMIT,
  READ_FILE_LIMIT,
  type ContainerState,
  type DirSpec,
  type DiskAgentSpec,
  EngineUnavailableError,
  type ExecResult,
  type FileSpec,
  type GatewaySpec,
  type HostSpec,
  type NetworkInfo,
  type ProbeSpec,
  type Runtime,
  type UploadGroup,
  type VolumeExport,
  type VolumeHelperSpec,
  type VolumeState,
} from "../runtime.js";
import { type DockerError, isEngineDown } from "./engine-errors.js";

const MANAGED_LABEL = "cloud-cli-proxy.managed";
const INSTANCE_LABEL = "cloud-cli-proxy.instance";

const statusOf = (err: unknown) => (err as DockerError)?.statusCode;

async function guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isEngineDown(err)) throw new EngineUnavailableError(err);
    if (err instanceof ContainerOperationError || err instanceof EngineUnavailableError) throw err;
    const detail = (err as DockerError)?.json?.message ?? (err as Error)?.message ?? String(err);
    throw new ContainerOperationError(`${what}: ${detail}`, err);
  }
}

function toState(info: Docker.ContainerInspectInfo): ContainerState {
  const networks: Record<string, string> = {};
  for (const [name, n] of Object.entries(info.NetworkSettings?.Networks ?? {})) {
    if (n?.IPAddress) networks[name] = n.IPAddress;
  }
  const started = info.State?.StartedAt;
  return {
    id: info.Id,
    name: info.Name.replace(/^\//, ""),
    running: Boolean(info.State?.Running),
    startedAt: started && !started.startsWith("0001-") ? new Date(started) : null,
    labels: info.Config?.Labels ?? {},
    networks,
    image: info.Config?.Image ?? "",
    imageId: info.Image ?? "",
    createdAt: new Date(info.Created),
  };
}

/**
 * Docker's multiplexed attach stream (8-byte frame headers, docs: Docker Engine API "attach"):
 * stdout frames pass on with backpressure (a pipe into this Transform pauses the engine's stream),
 * stderr is kept, capped, for an error message. dockerode's demuxStream ignores backpressure, which
 * would buffer a whole home in memory when the reader is slower than the engine.
 */
class AttachDemux extends Transform {
  private buf: Buffer = Buffer.alloc(0);
  stderr = "";
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 8) {
      const size = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + size) break;
      const payload = this.buf.subarray(8, 8 + size);
      if (this.buf[0] === 2) {
        if (this.stderr.length < 4096) this.stderr += payload.toString("utf8");
      } else {
        this.push(payload);
      }
      this.buf = this.buf.subarray(8 + size);
    }
    cb();
  }
}

/**
 * The import helper's program (a host move, docs/api.md#hosts-move). stdin goes through
 * `tee` into tar (via a fifo) and into `wc -c`, and its sha256 is printed: the worker compares
 * length and checksum with what it sent. Once tar is done the rest of the fifo is drained, so tee
 * never dies of a closed pipe on tar's trailing padding; the exit status is tar's.
 */
const IMPORT_SCRIPT = [
  "mkfifo /tmp/ccp-tar /tmp/ccp-count || exit 1",
  '{ tar --numeric-owner -xpf - -C "$1"; s=$?; cat >/dev/null; exit $s; } </tmp/ccp-tar &',
  "t=$!",
  "wc -c </tmp/ccp-count &",
  "tee /tmp/ccp-tar /tmp/ccp-count | sha256sum",
  'wait "$t"; s=$?; wait; exit $s',
].join("\n");

/** Docker refuses `--storage-opt size` unless overlay2 sits on xfs mounted with pquota. */
const STORAGE_OPT_REFUSED = /storage-?opt|pquota|quota/i;

/**
 * @param instance  the deployment's REDIS_PREFIX; stamped on every object this runtime creates
 *                  and the filter of every listing, so one engine can serve several deployments.
 * @param logs      json-file rotation of every container this runtime creates (CONTAINER_LOG_MAX_*):
 *                  without it a host printing to its PID 1's stdout fills the engine's disk.
 */
export function createDockerRuntime(opts: {
  /** A local socket (single machine), or `connection`: TCP with mutual TLS to another machine's engine (docs/engines.md). */
  socketPath?: string;
  connection?: DockerConnection;
  instance: string;
  logs?: { maxSize: string; maxFiles: number };
}): Runtime {
  const instanceLabel = `${INSTANCE_LABEL}=${opts.instance}`;
  const stamp = (labels: Record<string, string>) => ({ ...labels, [INSTANCE_LABEL]: opts.instance });
  const docker = new Docker(opts.connection ?? { socketPath: opts.socketPath ?? "/var/run/docker.sock" });
  const LogConfig = {
    Type: "json-file",
    Config: { "max-size": opts.logs?.maxSize ?? "10m", "max-file": String(opts.logs?.maxFiles ?? 3) },
  };
  // Whether the writable layer can be capped: only overlay2 on xfs (and then only with pquota,
  // which `docker info` does not report: a refusal turns it off for this process).
  let storageOptUsable: Promise<boolean> | undefined;
  const canCapRootfs = () =>
    (storageOptUsable ??= docker
      .info()
      .then((info: { Driver?: string; DriverStatus?: [string, string][] }) => {
        const backing = (info.DriverStatus ?? []).find(([k]) => k === "Backing Filesystem")?.[1];
        return info.Driver === "overlay2" && backing === "xfs";
      })
      .catch(() => false));

  const inspectContainer = async (name: string): Promise<ContainerState | null> =>
    guard(`inspect ${name}`, async () => {
      try {
        return toState(await docker.getContainer(name).inspect());
      } catch (err) {
        if (statusOf(err) === 404) return null;
        throw err;
      }
    });

  /**
   * A short-lived helper that reads or writes one volume (exportVolume, importVolume): from the
   * host image as root, no network, no logs kept (its output is the home's content), no restart.
   * Not labelled with a host id, so the reconciler never takes it for a host's container.
   */
  const createVolumeHelper = async (
    helperName: string,
    volume: string,
    helper: VolumeHelperSpec,
    o: { readOnly: boolean; stdin: boolean; entrypoint: string[] },
  ): Promise<Docker.Container> => {
    // Left by an earlier attempt that died mid-copy.
    try {
      await docker.getContainer(helperName).remove({ force: true });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    return docker.createContainer({
      name: helperName,
      Image: helper.image,
      User: "0:0",
      Entrypoint: o.entrypoint,
      Cmd: [],
      Labels: stamp({ [MANAGED_LABEL]: "true", "cloud-cli-proxy.role": "volume-helper" }),
      AttachStdin: o.stdin,
      OpenStdin: o.stdin,
      StdinOnce: o.stdin,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: "none",
        Mounts: [{ Type: "volume", Source: volume, Target: helper.mountPath, ReadOnly: o.readOnly }],
        LogConfig: { Type: "none", Config: {} },
        RestartPolicy: { Name: "no" },
      },
    });
  };

  const putFiles = (name: string, dir: string, files: FileSpec[], dirs: DirSpec[] = []) =>
    guard(`upload files to ${name}:${dir}`, async () => {
      await docker.getContainer(name).putArchive(buildTar(files, dirs), { path: dir });
    });

  const uploadAll = async (name: string, groups: UploadGroup[]) => {
    for (const g of groups) await putFiles(name, g.dir, g.files, g.dirs);
  };

  /**
   * Inspect a network by name. Network names are not unique to Docker: two creates racing past
   * the daemon's best-effort CheckDuplicate (three compose workers starting at once did) leave
   * two networks of one name, and every later use of the name fails as "ambiguous". The oldest
   * one wins; the others are removed while nothing is attached to them (a container on one of
   * them keeps it, and the name stays ambiguous until that container goes, loudly).
   */
  const inspectNetworkByName = async (name: string): Promise<unknown> => {
    try {
      return await docker.getNetwork(name).inspect();
    } catch (err) {
      if (!/ambiguous/i.test((err as Error)?.message ?? "")) throw err;
    }
    const same = ((await docker.listNetworks({ filters: { name: [name] } })) as { Id: string; Name: string; Created?: string }[])
      .filter((n) => n.Name === name)
      .sort((a, b) => (a.Created ?? "").localeCompare(b.Created ?? "") || a.Id.localeCompare(b.Id));
    for (const extra of same.slice(1)) {
      const info = (await docker.getNetwork(extra.Id).inspect()) as { Containers?: Record<string, unknown> };
      if (Object.keys(info.Containers ?? {}).length > 0) continue;
      try {
        await docker.getNetwork(extra.Id).remove();
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
    }
    return docker.getNetwork(name).inspect();
  };

  const createIfAbsent = async (name: string, create: () => Promise<unknown>) => {
    try {
      await create();
    } catch (err) {
      // 409: another attempt (a redelivered job) created it first. Inspect-before-create is
      // racy on its own; the name is the real lock.
      if (statusOf(err) !== 409) throw err;
    }
  };

  return {
    async ping() {
      try {
        await docker.ping();
        return true;
      } catch {
        return false;
      }
    },

    imageExists: (ref) =>
      guard(`inspect image ${ref}`, async () => {
        try {
          await docker.getImage(ref).inspect();
          return true;
        } catch (err) {
          if (statusOf(err) === 404) return false;
          throw err;
        }
      }),

    imageId: (ref) =>
      guard(`inspect image ${ref}`, async () => {
        try {
          return (await docker.getImage(ref).inspect()).Id;
        } catch (err) {
          if (statusOf(err) === 404) return null;
          throw err;
        }
      }),

    exportImage: (ref) => guard(`export image ${ref}`, async () => (await docker.getImage(ref).get()) as NodeJS.ReadableStream),

    importImage: (tar) =>
      guard("import image", async () => {
        const progress = await docker.loadImage(tar, { quiet: true });
        // The load's answer streams while the engine reads the tar: done when it ends; an error
        // line (a corrupt or truncated tar) fails the import.
        await new Promise<void>((resolve, reject) =>
          docker.modem.followProgress(progress, (err: Error | null, out: { error?: string; errorDetail?: { message?: string } }[]) => {
            const failed = err ?? out.find((o) => o.error || o.errorDetail);
            if (failed) reject(failed instanceof Error ? failed : new Error(failed.errorDetail?.message ?? failed.error));
            else resolve();
          }),
        );
      }),

    deleteImage: (ref) =>
      guard(`remove image ${ref}`, async () => {
        try {
          await docker.getImage(ref).remove({ force: true });
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
        }
      }),

    ensureNetwork: (name, netOpts) =>
      guard(`network ${name}`, async () => {
        const read = async (): Promise<NetworkInfo | null> => {
          try {
            const n = (await inspectNetworkByName(name)) as {
              IPAM?: { Config?: { Subnet?: string; Gateway?: string }[] };
            };
            const cfg = (n.IPAM?.Config ?? []).find((c) => c.Subnet && !c.Subnet.includes(":"));
            if (!cfg?.Subnet) throw new ContainerOperationError(`network ${name} has no IPv4 subnet`);
            const gateway = cfg.Gateway ?? cfg.Subnet.replace(/\.\d+\/\d+$/, ".1");
            return { name, gateway, subnet: cfg.Subnet };
          } catch (err) {
            if (statusOf(err) === 404) return null;
            throw err;
          }
        };
        const existing = await read();
        if (existing) return existing;
        try {
          await docker.createNetwork({
            Name: name,
            Driver: "bridge",
            Internal: netOpts.internal ?? false,
            CheckDuplicate: true,
            // No container-to-container traffic on our bridges: hosts must not reach each other.
            Options: { "com.docker.network.bridge.enable_icc": "false" },
            Labels: { [MANAGED_LABEL]: "true" },
            ...(netOpts.subnet ? { IPAM: { Config: [{ Subnet: netOpts.subnet }] } } : {}),
          });
        } catch (err) {
          if (statusOf(err) !== 409) throw err;
        }
        const created = await read();
        if (!created) throw new ContainerOperationError(`network ${name} could not be created`);
        return created;
      }),

    listNetworks: () =>
      guard("list networks", async () => {
        const all = (await docker.listNetworks()) as { Name: string; IPAM?: { Config?: { Subnet?: string; Gateway?: string }[] } }[];
        return all.flatMap((n) =>
          (n.IPAM?.Config ?? [])
            .filter((c) => c.Subnet && !c.Subnet.includes(":"))
            .map((c) => ({ name: n.Name, subnet: c.Subnet!, gateway: c.Gateway ?? "" })),
        );
      }),

    inspectContainer,

    createGateway: (spec: GatewaySpec) =>
      guard(`create gateway ${spec.name}`, async () => {
        if (!(await inspectContainer(spec.name))) {
          const [first] = spec.networks;
          await createIfAbsent(spec.name, () =>
            docker.createContainer({
              name: spec.name,
              Image: spec.image,
              Hostname: spec.hostname,
              Labels: stamp(spec.labels),
              HostConfig: {
                CapAdd: ["NET_ADMIN"],
                CapDrop: ["NET_RAW"],
                Devices: [{ PathOnHost: "/dev/net/tun", PathInContainer: "/dev/net/tun", CgroupPermissions: "rwm" }],
                Sysctls: {
                  "net.ipv4.conf.all.src_valid_mark": "1",
                  "net.ipv6.conf.all.disable_ipv6": "1",
                  "net.ipv6.conf.default.disable_ipv6": "1",
                },
                Memory: 128 * 1024 * 1024,
                PidsLimit: 256,
                LogConfig,
                NetworkMode: first,
                RestartPolicy: { Name: "no" },
                SecurityOpt: ["no-new-privileges"],
              },
              NetworkingConfig: first ? { EndpointsConfig: { [first]: {} } } : undefined,
            }),
          );
        }
        let raw: Docker.ContainerInspectInfo | null = null;
        try {
          raw = await docker.getContainer(spec.name).inspect();
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
        }
        if (raw && !raw.State?.Running) {
          // Every network is attached before start (docs/architecture.md#containers). Checked on every attempt,
          // not only right after the create: a worker killed between the create and the connects
          // leaves a container that exists (so the create is skipped) but lacks the management
          // network, and the redelivered job would then fail with "no management address".
          const attached = new Set(Object.keys(raw.NetworkSettings?.Networks ?? {}));
          for (const net of spec.networks) {
            if (attached.has(net)) continue;
            try {
              await docker.getNetwork(net).connect({ Container: spec.name });
            } catch (err) {
              // Already connected (a concurrent attempt): fine.
              if (statusOf(err) !== 403 && statusOf(err) !== 409) throw err;
            }
          }
          await uploadAll(spec.name, spec.files);
        }
      }),

    createHost: (spec: HostSpec) =>
      guard(`create host ${spec.name}`, async () => {
        if (!(await inspectContainer(spec.name))) {
          // Writable tmp dirs are tmpfs: bounded, and never on the engine's disk. mode=1777 as a
          // normal /tmp; exec allowed (tools unpack and run things there).
          const tmpfs = `rw,nosuid,nodev,size=${spec.tmpfsMb}m,mode=1777`;
          const create = (storageOpt: boolean) =>
            createIfAbsent(spec.name, () =>
              docker.createContainer({
                name: spec.name,
                Image: spec.image,
                Labels: stamp(spec.labels),
                Env: spec.env,
                HostConfig: {
                  NetworkMode: `container:${spec.gatewayName}`,
                  CapDrop: ["NET_RAW"],
                  SecurityOpt: ["no-new-privileges"],
                  Memory: spec.memoryMb * 1024 * 1024,
                  NanoCpus: Math.round(spec.cpus * 1e9),
                  PidsLimit: spec.pids,
                  Mounts: [{ Type: "volume", Source: spec.volume.name, Target: spec.volume.target }],
                  Tmpfs: { "/tmp": tmpfs, "/var/tmp": tmpfs },
                  LogConfig,
                  ...(storageOpt ? { StorageOpt: { size: `${spec.rootfsSizeMb}m` } } : {}),
                  RestartPolicy: { Name: "no" },
                  Init: false,
                },
              }),
            );
          const capRootfs = spec.rootfsSizeMb !== undefined && (await canCapRootfs());
          try {
            await create(capRootfs);
          } catch (err) {
            const detail = (err as DockerError)?.json?.message ?? (err as Error)?.message ?? "";
            if (!capRootfs || !STORAGE_OPT_REFUSED.test(detail)) throw err;
            storageOptUsable = Promise.resolve(false); // xfs without pquota: uncapped layer
            await create(false);
          }
        }
        const state = await inspectContainer(spec.name);
        if (state && !state.running) await uploadAll(spec.name, spec.files);
      }),

    createProbe: (spec: ProbeSpec) =>
      guard(`create probe ${spec.name}`, async () => {
        // A leftover of an earlier attempt of the same task: replace it.
        try {
          await docker.getContainer(spec.name).remove({ force: true });
        } catch (err) {
          if (statusOf(err) !== 404 && statusOf(err) !== 409) throw err;
        }
        const c = await docker.createContainer({
          name: spec.name,
          Image: spec.image,
          Labels: stamp(spec.labels),
          User: spec.user,
          Entrypoint: spec.entrypoint,
          Cmd: spec.cmd,
          HostConfig: {
            NetworkMode: `container:${spec.joinContainer}`,
            CapDrop: ["ALL"],
            SecurityOpt: ["no-new-privileges"],
            Memory: 64 * 1024 * 1024,
            PidsLimit: 64,
            LogConfig,
            RestartPolicy: { Name: "no" },
            AutoRemove: false,
          },
        });
        await c.start();
      }),

    startContainer: (name) =>
      guard(`start ${name}`, async () => {
        try {
          await docker.getContainer(name).start();
        } catch (err) {
          if (statusOf(err) !== 304) throw err; // 304: already running
        }
      }),

    stopContainer: (name, grace) =>
      guard(`stop ${name}`, async () => {
        try {
          await docker.getContainer(name).stop({ t: grace });
        } catch (err) {
          if (statusOf(err) !== 304 && statusOf(err) !== 404) throw err; // stopped or absent: done
        }
      }),

    restartContainer: (name, grace) =>
      guard(`restart ${name}`, async () => {
        await docker.getContainer(name).restart({ t: grace });
      }),

    removeContainer: (name) =>
      guard(`remove ${name}`, async () => {
        try {
          await docker.getContainer(name).remove({ force: true, v: false });
        } catch (err) {
          // 404: already gone; 409: removal already in progress.
          if (statusOf(err) !== 404 && statusOf(err) !== 409) throw err;
        }
      }),

    renameContainer: (name, to) =>
      guard(`rename ${name}`, async () => {
        await docker.getContainer(name).rename({ name: to });
      }),

    ensureVolume: (name, labels, volOpts = {}) =>
      guard(`volume ${name}`, async () => {
        try {
          await docker.getVolume(name).inspect();
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
          await docker.createVolume({
            Name: name,
            Labels: stamp(labels),
            ...(volOpts.bindDevice
              ? { Driver: "local", DriverOpts: { type: "none", o: "bind", device: volOpts.bindDevice } }
              : {}),
          });
        }
      }),

    inspectVolume: (name) =>
      guard(`inspect volume ${name}`, async () => {
        try {
          const v = (await docker.getVolume(name).inspect()) as { Name: string; Labels?: Record<string, string> | null; Options?: Record<string, string> | null };
          return { name: v.Name, labels: v.Labels ?? {}, options: v.Options ?? {} };
        } catch (err) {
          if (statusOf(err) === 404) return null;
          throw err;
        }
      }),

    ensureDiskAgent: (spec: DiskAgentSpec) =>
      guard(`disk agent ${spec.name}`, async () => {
        const read = async () => {
          try {
            return await docker.getContainer(spec.name).inspect();
          } catch (err) {
            if (statusOf(err) === 404) return null;
            throw err;
          }
        };
        let info = await read();
        // An agent made by an older release (other labels: another spec) is replaced; it holds no
        // state, the mounts live in the engine's namespace.
        const stale = info && Object.entries(spec.labels).some(([k, v]) => info!.Config?.Labels?.[k] !== v);
        if (stale) {
          try {
            await docker.getContainer(spec.name).remove({ force: true });
          } catch (err) {
            if (statusOf(err) !== 404 && statusOf(err) !== 409) throw err;
          }
          info = await read();
        }
        if (!info) {
          await createIfAbsent(spec.name, () =>
            docker.createContainer({
              name: spec.name,
              Image: spec.image,
              Labels: spec.labels,
              Entrypoint: ["sleep"],
              Cmd: ["infinity"],
              HostConfig: {
                // Not --privileged: CAP_SYS_ADMIN (mount, setns) and CAP_SYS_PTRACE (to open the
                // engine's namespace), loop devices only (block major 7, /dev/loop-control), the
                // machine's PID namespace (to find the engine's process), no network. AppArmor's
                // docker-default profile forbids mount, hence unconfined; seccomp stays default.
                CapDrop: ["ALL"],
                CapAdd: ["SYS_ADMIN", "SYS_PTRACE", "SYS_CHROOT", "CHOWN", "DAC_OVERRIDE", "FOWNER"],
                DeviceCgroupRules: ["b 7:* rwm", "c 10:237 rwm"],
                SecurityOpt: ["apparmor=unconfined", "label=disable"],
                PidMode: "host",
                NetworkMode: "none",
                Memory: 256 * 1024 * 1024,
                PidsLimit: 128,
                LogConfig,
                RestartPolicy: { Name: "no" },
              },
            }),
          );
          info = await read();
        }
        if (info && !info.State?.Running) {
          try {
            await docker.getContainer(spec.name).start();
          } catch (err) {
            if (statusOf(err) !== 304 && statusOf(err) !== 409) throw err;
          }
          // Two tasks may start it at once: the loser's start returns before the winner's is done.
          // Up to 30 s: on a loaded engine a start can take seconds (the chaos stage, six workers on
          // two cores, saw 5 s run out).
          for (let i = 0; i < 300; i++) {
            info = await read();
            if (!info || info.State?.Running) break;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        const pid = info?.State?.Pid ?? 0;
        if (!info?.State?.Running || pid < 2) throw new ContainerOperationError(`disk agent ${spec.name} is not running`);
        return { pid };
      }),

    removeVolume: (name) =>
      guard(`remove volume ${name}`, async () => {
        try {
          await docker.getVolume(name).remove({ force: true });
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
        }
      }),

    exportVolume: (name, helper) =>
      guard(`export volume ${name}`, async (): Promise<VolumeExport> => {
        const c = await createVolumeHelper(`${name}-export`, name, helper, {
          readOnly: true,
          stdin: false,
          entrypoint: ["tar", "--numeric-owner", "-C", helper.mountPath, "-cf", "-", "."],
        });
        const raw = await c.attach({ stream: true, stdout: true, stderr: true });
        const demux = new AttachDemux();
        raw.on("error", (e: Error) => demux.destroy(e));
        raw.pipe(demux);
        let ended = false;
        demux.on("end", () => (ended = true));
        // A reader that gives up (the import failed) must not leave tar blocked on a full pipe.
        demux.on("close", () => {
          if (!ended) c.remove({ force: true }).catch(() => {});
        });
        await c.start();
        const done = guard(`export volume ${name}`, async () => {
          const { StatusCode } = (await c.wait()) as { StatusCode: number };
          if (StatusCode !== 0) throw new ContainerOperationError(`export volume ${name}: tar exited ${StatusCode}: ${demux.stderr.trim().slice(0, 500)}`);
        }).finally(() => c.remove({ force: true }).catch(() => {}));
        // Awaited by the caller after the stream; marked handled so an early failure is not "unhandled".
        done.catch(() => {});
        return { stream: demux, done };
      }),

    importVolume: (name, tar, helper) =>
      guard(`import volume ${name}`, async () => {
        const c = await createVolumeHelper(`${name}-import`, name, helper, {
          readOnly: false,
          stdin: true,
          entrypoint: ["sh", "-c", IMPORT_SCRIPT, "ccp-import", helper.mountPath],
        });
        try {
          const raw = await c.attach({ stream: true, hijack: true, stdin: true, stdout: true, stderr: true });
          const demux = new AttachDemux();
          let out = "";
          demux.on("data", (d: Buffer) => {
            if (out.length < 4096) out += d.toString("utf8");
          });
          raw.pipe(demux);
          const outputEnded = once(demux, "end").catch(() => {});
          // Never awaited on its own: a helper that exits early leaves the sender stalled, and
          // its exit (below) is what ends the wait.
          let sendError: Error | undefined;
          let sentAll = false;
          const stdin = raw as unknown as NodeJS.WritableStream & { end(): void };
          raw.on("error", (e: Error) => (sendError ??= e));
          tar.on("error", (e: Error) => {
            sendError ??= e;
            // The source broke off: EOF for the helper, whose tar then fails or stops short.
            stdin.end();
          });
          tar.on("end", () => (sentAll = true));
          await c.start();
          // pipe() ends the attach stream when the tar ends: the helper's stdin sees EOF.
          tar.pipe(stdin);
          const [{ StatusCode }] = (await Promise.all([c.wait(), outputEnded])) as [{ StatusCode: number }, unknown];
          if (StatusCode !== 0) throw new ContainerOperationError(`import volume ${name}: tar exited ${StatusCode}: ${demux.stderr.trim().slice(0, 500)}`);
          if (sendError || !sentAll) {
            throw new ContainerOperationError(`import volume ${name}: the stream was cut short (${sendError?.message ?? "incomplete"})`);
          }
          const sha256 = /\b([0-9a-f]{64})\b/.exec(out)?.[1];
          const bytes = /^\s*(\d+)\s*$/m.exec(out)?.[1];
          if (!sha256 || bytes === undefined) throw new ContainerOperationError(`import volume ${name}: unexpected helper output`);
          return { sha256, bytes: Number(bytes) };
        } finally {
          await c.remove({ force: true }).catch(() => {});
        }
      }),

    exec: (name, argv, execOpts = {}) =>
      guard(`exec in ${name}`, async () => {
        const exec = await docker.getContainer(name).exec({
          Cmd: argv,
          User: execOpts.user ?? "root",
          AttachStdout: true,
          AttachStderr: true,
          AttachStdin: execOpts.stdin !== undefined,
        });
        const stream = await exec.start({ hijack: true, stdin: execOpts.stdin !== undefined });
        const out = new PassThrough();
        const errS = new PassThrough();
        const chunks: Buffer[] = [];
        const errChunks: Buffer[] = [];
        const limit = execOpts.maxOutputBytes ?? EXEC_OUTPUT_LIMIT;
        let total = 0;
        let overflow: (() => void) | undefined;
        const collect = (into: Buffer[]) => (d: Buffer) => {
          total += d.length;
          if (total > limit) return overflow?.();
          into.push(d);
        };
        out.on("data", collect(chunks));
        errS.on("data", collect(errChunks));
        docker.modem.demuxStream(stream, out, errS);
        if (execOpts.stdin !== undefined) {
          stream.write(execOpts.stdin);
          (stream as unknown as { end: () => void }).end();
        }
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            stream.destroy();
            // The engine did not finish a command in time: on a loaded machine that is the engine
            // being slow, not the operation being wrong, so the task retries (docker_unavailable)
            // rather than failing on the first one (the chaos stage saw one at 30 s; docs/chaos.md).
            reject(new EngineUnavailableError(new Error(`exec in ${name} timed out`)));
          }, execOpts.timeoutMs ?? 30_000);
          overflow = () => {
            clearTimeout(timer);
            stream.destroy();
            reject(new ContainerOperationError(`exec in ${name} printed more than ${limit} bytes`));
          };
          stream.on("end", () => {
            clearTimeout(timer);
            resolve();
          });
          stream.on("close", () => {
            clearTimeout(timer);
            resolve();
          });
          stream.on("error", (e) => {
            clearTimeout(timer);
            reject(e);
          });
        });
        const info = await exec.inspect();
        return {
          exitCode: info.ExitCode ?? -1,
          stdout: Buffer.concat(chunks).toString("utf8"),
          stderr: Buffer.concat(errChunks).toString("utf8"),
        } satisfies ExecResult;
      }),

    putFiles,

    readFile: (name, path) =>
      guard(`read ${name}:${path}`, async () => {
        try {
          const stream = await docker.getContainer(name).getArchive({ path });
          const chunks: Buffer[] = [];
          let total = 0;
          for await (const c of stream as AsyncIterable<Buffer>) {
            total += c.length;
            if (total > READ_FILE_LIMIT) {
              (stream as unknown as { destroy(): void }).destroy();
              throw new ContainerOperationError(`${path} in ${name} is larger than ${READ_FILE_LIMIT} bytes`);
            }
            chunks.push(c);
          }
          return firstFileOfTar(Buffer.concat(chunks));
        } catch (err) {
          if (statusOf(err) === 404) return null;
          throw err;
        }
      }),

    listManagedContainers: () =>
      guard("list containers", async () => {
        const list = await docker.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`, instanceLabel] } });
        const out: ContainerState[] = [];
        for (const c of list) {
          const s = await inspectContainer(c.Id);
          if (s) out.push(s);
        }
        return out;
      }),

    listManagedVolumes: () =>
      guard("list volumes", async () => {
        const res = await docker.listVolumes({ filters: { label: [`${MANAGED_LABEL}=true`, instanceLabel] } });
        return (res.Volumes ?? []).map((v): VolumeState => ({ name: v.Name, labels: v.Labels ?? {}, options: (v.Options as Record<string, string> | null) ?? {} }));
      }),

    containerStats: (name) =>
      guard(`stats of ${name}`, async () => {
        try {
          // `one-shot`: one reading at once instead of Docker's second sample a second later; the
          // idle scan keeps the previous cumulative reading itself (docs/idle.md#scan).
          const raw = (await docker.getContainer(name).stats({ stream: false, "one-shot": true } as never)) as unknown as DockerStats;
          return statsOf(raw);
        } catch (err) {
          if (statusOf(err) === 404 || statusOf(err) === 409) return null;
          throw err;
        }
      }),
  };
}

interface DockerStats {
  read?: string;
  pids_stats?: { current?: number };
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  memory_stats?: { usage?: number; stats?: Record<string, number> };
}

/**
 * A stopped container answers with zeroes (no pids, no usage): that is "not running". Memory as
 * the docker CLI shows it: usage minus the inactive page cache (cgroup v2 `inactive_file`, v1
 * `total_inactive_file`), which the kernel drops before it reclaims anything else.
 */
function statsOf(raw: DockerStats): { cpuUsageNs: number; memoryBytes: number; at: Date } | null {
  const cpu = raw.cpu_stats?.cpu_usage?.total_usage;
  if (!raw.pids_stats?.current || cpu === undefined) return null;
  const usage = raw.memory_stats?.usage ?? 0;
  const inactive = raw.memory_stats?.stats?.inactive_file ?? raw.memory_stats?.stats?.total_inactive_file ?? 0;
  const at = raw.read ? new Date(raw.read) : new Date();
  return { cpuUsageNs: cpu, memoryBytes: Math.max(0, usage - inactive), at: Number.isNaN(at.getTime()) ? new Date() : at };
}
