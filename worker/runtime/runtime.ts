/**
 * The worker's view of a container engine (docs/architecture.md#runtime, docs/architecture.md#tree). Docker implements it
 * today; a Kubernetes driver would map a host to a Pod behind the same interface. Every call is
 * idempotent where it can be: absent objects are `null`/no-ops, never errors.
 */
export interface FileSpec {
  /** Path relative to the directory it is uploaded into. */
  name: string;
  content: string | Buffer;
  mode: number;
  uid?: number;
  gid?: number;
}

/** A directory entry in an upload (created when missing, with this mode and owner). */
export interface DirSpec {
  name: string;
  mode: number;
  uid?: number;
  gid?: number;
}

export interface UploadGroup {
  dir: string;
  files: FileSpec[];
  dirs?: DirSpec[];
}

export interface ContainerState {
  id: string;
  name: string;
  running: boolean;
  startedAt: Date | null;
  labels: Record<string, string>;
  /** IPv4 address per attached network name. */
  networks: Record<string, string>;
  image: string;
  /** The Docker image id (sha256:…) the container was created from, whatever its tag points to now. */
  imageId: string;
  createdAt: Date;
}

export interface VolumeState {
  name: string;
  labels: Record<string, string>;
  /** The local driver's options: `{type: "none", o: "bind", device}` for a home on its own disk. */
  options: Record<string, string>;
}

/**
 * The engine-wide privileged helper that loop-mounts the homes' fixed-size filesystems on the
 * engine's machine (worker/hosts/disk.ts). Not stamped with an instance: every deployment on the
 * engine shares it, like the networks.
 */
export interface DiskAgentSpec {
  name: string;
  image: string;
  labels: Record<string, string>;
}

export interface NetworkInfo {
  name: string;
  /** The bridge's own address on that network: where the Docker host (api, sshd) connects from. */
  gateway: string;
  subnet: string;
}

export interface GatewaySpec {
  name: string;
  image: string;
  hostname: string;
  labels: Record<string, string>;
  networks: string[];
  files: UploadGroup[];
}

export interface HostSpec {
  name: string;
  image: string;
  gatewayName: string;
  labels: Record<string, string>;
  env: string[];
  memoryMb: number;
  cpus: number;
  pids: number;
  volume: { name: string; target: string };
  /** /tmp and /var/tmp are tmpfs of this size (their pages count in the memory limit). */
  tmpfsMb: number;
  /**
   * Cap of the container's writable layer, applied only where the storage driver can
   * (overlay2 on xfs with pquota); elsewhere the layer is not capped (README "Disk and logs").
   */
  rootfsSizeMb?: number;
  files: UploadGroup[];
}

/**
 * A short-lived check container (docs/egress.md#verification): joins another container's network namespace,
 * runs as an unprivileged user with every capability dropped and no-new-privileges, fixed argv.
 */
export interface ProbeSpec {
  name: string;
  image: string;
  /** The container whose network namespace (and resolver file) the probe shares. */
  joinContainer: string;
  labels: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
  /** "uid:gid" */
  user: string;
}

/**
 * A short-lived helper container that reads or writes one volume (a host move, docs/api.md#hosts-move):
 * run from `image` as root, no network, the volume mounted at `mountPath`.
 */
export interface VolumeHelperSpec {
  image: string;
  mountPath: string;
}

/** A volume's content leaving the engine: the tar stream, and the helper's exit (rejects unless 0). */
export interface VolumeExport {
  stream: NodeJS.ReadableStream;
  done: Promise<void>;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * One reading of a running container's resource counters (docs/idle.md#scan): the CPU time it has
 * used since it started (cumulative, so two readings give the average over the time between
 * them) and the memory it uses now, page cache that can be dropped not counted.
 */
export interface ContainerStats {
  cpuUsageNs: number;
  memoryBytes: number;
  /** When the engine took the reading. */
  at: Date;
}

export interface Runtime {
  ping(): Promise<boolean>;
  imageExists(ref: string): Promise<boolean>;
  /** The image id (sha256:…) `ref` names on the engine now, or null when it is absent. */
  imageId(ref: string): Promise<string | null>;
  /** `docker save` of one image: a tar stream (docs/engines.md#images). */
  exportImage(ref: string): Promise<NodeJS.ReadableStream>;
  /** `docker load` of such a tar stream; resolves when the engine has read all of it. */
  importImage(tar: NodeJS.ReadableStream): Promise<void>;
  /** Remove an image tag (and the image when nothing else uses it); absent is fine. */
  deleteImage(ref: string): Promise<void>;
  ensureNetwork(name: string, opts: { subnet?: string; internal?: boolean }): Promise<NetworkInfo>;
  /** Every network of the engine with an IPv4 subnet (ours and anyone else's, e.g. compose projects). */
  listNetworks(): Promise<NetworkInfo[]>;
  inspectContainer(name: string): Promise<ContainerState | null>;
  createGateway(spec: GatewaySpec): Promise<void>;
  createHost(spec: HostSpec): Promise<void>;
  /** Create and start a probe container; an existing one of that name is replaced. */
  createProbe(spec: ProbeSpec): Promise<void>;
  startContainer(name: string): Promise<void>;
  stopContainer(name: string, graceSeconds: number): Promise<void>;
  restartContainer(name: string, graceSeconds: number): Promise<void>;
  removeContainer(name: string): Promise<void>;
  /** Give a container another name (a spare egress-test gateway taken by a test). */
  renameContainer(name: string, to: string): Promise<void>;
  /** `bindDevice`: a local-driver bind volume over that directory of the engine's machine. */
  ensureVolume(name: string, labels: Record<string, string>, opts?: { bindDevice?: string }): Promise<void>;
  inspectVolume(name: string): Promise<VolumeState | null>;
  /** Create (if missing) and start the disk agent; returns its PID 1 as the engine's machine sees it. */
  ensureDiskAgent(spec: DiskAgentSpec): Promise<{ pid: number }>;
  removeVolume(name: string): Promise<void>;
  /**
   * The volume's content as a tar stream (`tar -C <mountPath> -cf - .`, numeric owners), read by a
   * helper that mounts it read-only. Consume `stream` and then await `done`.
   */
  exportVolume(name: string, helper: VolumeHelperSpec): Promise<VolumeExport>;
  /**
   * Extract a tar stream into the volume (`tar -xpf -`, numeric owners, as root). Resolves with
   * the sha256 and length of the bytes the helper read, so the caller can compare them with what
   * it sent; rejects when the extraction fails.
   */
  importVolume(name: string, tar: NodeJS.ReadableStream, helper: VolumeHelperSpec): Promise<{ sha256: string; bytes: number }>;
  /** Fixed argument vectors only; data goes through `stdin`, never a shell string. */
  /**
   * Output is attacker-controlled (every process in a host is the tenant's): stdout + stderr are
   * capped at `maxOutputBytes` (default EXEC_OUTPUT_LIMIT) and the call at `timeoutMs` (30 s);
   * past the cap the exec is abandoned with a ContainerOperationError, so the worker's memory
   * stays bounded whatever a host prints (issue 10 §2). Past the timeout it is abandoned with an
   * EngineUnavailableError: retried by the task's bounded retries (3 attempts), since on a loaded
   * engine a slow exec is the engine (docs/chaos.md); a host that hangs an exec on purpose costs
   * at most those attempts.
   */
  exec(name: string, argv: string[], opts?: { user?: string; stdin?: string; timeoutMs?: number; maxOutputBytes?: number }): Promise<ExecResult>;
  putFiles(name: string, dir: string, files: FileSpec[], dirs?: DirSpec[]): Promise<void>;
  /** The content of one file in a container, or null when it does not exist. */
  /** At most READ_FILE_LIMIT bytes of archive are read; more is a ContainerOperationError. */
  readFile(name: string, path: string): Promise<Buffer | null>;
  listManagedContainers(): Promise<ContainerState[]>;
  listManagedVolumes(): Promise<VolumeState[]>;
  /** CPU and memory counters of a running container; null when it is absent or not running. */
  containerStats(name: string): Promise<ContainerStats | null>;
}

/** Raised when the engine itself does not answer (transient: the task is retried). */
export class EngineUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`container engine unavailable: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = "EngineUnavailableError";
  }
}

/** Docker refused to create or start something (permanent for this attempt). */
export class ContainerOperationError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "ContainerOperationError";
  }
}

/** Default cap on what one exec may print (stdout + stderr together). */
export const EXEC_OUTPUT_LIMIT = 1024 * 1024;
/** Cap on the tar stream of one readFile. */
export const READ_FILE_LIMIT = 4 * 1024 * 1024;
