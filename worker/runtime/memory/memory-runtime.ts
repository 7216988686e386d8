import { createHash, randomBytes } from "node:crypto";
import { posix } from "node:path";
import { Readable } from "node:stream";
import {
  ContainerOperationError,
  EngineUnavailableError,
  type ContainerState,
  type ContainerStats,
  type DirSpec,
  type DiskAgentSpec,
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

/**
 * An in-memory container engine behind the `Runtime` interface (README "Testing"): containers with
 * state, networks with addresses, volumes with files, and just enough of the programs the worker
 * runs in them (the gateway's `ccp-gateway status|apply`, `sha256sum`, the authorized_keys read
 * and write scripts, the disk agent's script) for the real runner and host flows to run without an
 * engine. Failures are injected per operation (`failNext`), the engine can be taken away
 * (`setEngineDown`), and any call can be held at its start (`hold`) to act while a step runs.
 * The real-engine suites (test/docker/) stay the proof; this makes the flows' semantics cheap to
 * test.
 */

/** The Runtime's method names: what `failNext`, `hold` and the call log refer to. */
export type RuntimeOp = keyof Runtime;

export interface MemoryFile {
  content: Buffer;
  mode: number;
}

export interface MemoryVolume {
  name: string;
  labels: Record<string, string>;
  options: Record<string, string>;
  /** Path relative to the volume's root → file. */
  files: Map<string, MemoryFile>;
}

export type ContainerKind = "gateway" | "host" | "probe" | "disk-agent";

export interface MemoryContainer {
  id: string;
  name: string;
  kind: ContainerKind;
  image: string;
  imageId: string;
  labels: Record<string, string>;
  /** Network name → IPv4 address (empty for a host, which lives in its gateway's namespace). */
  networks: Record<string, string>;
  running: boolean;
  startedAt: Date | null;
  createdAt: Date;
  /** Absolute path → file (the container's own layer; a volume's files live in the volume). */
  files: Map<string, MemoryFile>;
  /** The volume mounted into a host container. */
  mount?: { volume: string; target: string };
  /** The container whose network namespace a host or probe shares. */
  joins?: string;
  spec: GatewaySpec | HostSpec | ProbeSpec | DiskAgentSpec;
  pid: number;
  /** What `ccp-gateway status` reports for a gateway ("ready" unless a test says otherwise). */
  gatewayStatus: "starting" | "ready" | "failed";
  /** Every upload into the container, in order (directory and file names). */
  uploads: { dir: string; files: string[] }[];
  /** What `containerStats` reports (setUsage): cumulative CPU time and memory in use. */
  usage?: { cpuUsageNs: number; memoryBytes: number };
  /** The TCP connections of a gateway's network namespace (setTcpConnections), as /proc/net/tcp lists them. */
  tcp?: MemoryTcpConnection[];
}

/** One socket of a network namespace: local port, remote address, and the kernel's state (1 = established). */
export interface MemoryTcpConnection {
  localPort: number;
  remoteAddress: string;
  remotePort?: number;
  state?: number;
}

export interface ExecCall {
  container: MemoryContainer;
  argv: string[];
  opts: { user?: string; stdin?: string; timeoutMs?: number; maxOutputBytes?: number };
}

/** Answers an exec, or returns undefined to leave it to the next handler (and finally the built-ins). */
export type ExecHandler = (call: ExecCall, rt: MemoryRuntime) => ExecResult | undefined | Promise<ExecResult | undefined>;

export interface CallRecord {
  op: RuntimeOp;
  /** The container, volume, network or image the call names (first argument), if any. */
  target?: string;
}

interface Injection {
  op: RuntimeOp;
  match?: (target: string | undefined) => boolean;
  error: () => Error;
  times: number;
}

interface Hold {
  op: RuntimeOp;
  match?: (target: string | undefined) => boolean;
  reached: () => void;
  release: Promise<void>;
}

export interface HoldHandle {
  /** Resolves once a matching call has started (and is blocked). */
  reached: Promise<void>;
  /** Let the blocked call go on. */
  release(): void;
}

const ok = (stdout = "", stderr = ""): ExecResult => ({ exitCode: 0, stdout, stderr });
const fail = (exitCode: number, stderr: string): ExecResult => ({ exitCode, stdout: "", stderr });
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const imageIdOf = (ref: string) => `sha256:${sha256(`image:${ref}`)}`;

/** Where an error should come from: the engine gone (transient) or the engine refusing (permanent). */
export const engineDown = () => new EngineUnavailableError(new Error("connect ENOENT (memory runtime: engine down)"));
export const refused = (what = "refused by the memory runtime") => new ContainerOperationError(what);

export class MemoryRuntime implements Runtime {
  readonly containers = new Map<string, MemoryContainer>();
  readonly volumes = new Map<string, MemoryVolume>();
  readonly networks = new Map<string, NetworkInfo & { internal: boolean; next: number }>();
  /** Image reference → image id. */
  readonly images = new Map<string, string>();
  /** Disk-agent state: `<dir>/<hostId>` → mounted. */
  readonly disks = new Map<string, { mounted: boolean; sizeMb: number }>();
  /** Every call, in order. */
  readonly calls: CallRecord[] = [];
  private engineUp = true;
  private injections: Injection[] = [];
  private holds: Hold[] = [];
  private handlers: ExecHandler[] = [];
  private nextSubnet = 0;
  private nextPid = 100;
  /** Clock of the engine: strictly increasing, so "started after" comparisons are never ties. */
  private lastTime = 0;

  constructor(opts: { images?: string[] } = {}) {
    for (const ref of opts.images ?? []) this.addImage(ref);
  }

  // --------------------------------------------------------------------------------------------
  // Test controls
  // --------------------------------------------------------------------------------------------

  addImage(ref: string, id = imageIdOf(ref)): void {
    this.images.set(ref, id);
  }

  removeImage(ref: string): void {
    this.images.delete(ref);
  }

  /** The engine stops answering: every call throws EngineUnavailableError and `ping` is false. */
  setEngineDown(down: boolean): void {
    this.engineUp = !down;
  }

  /**
   * The next `times` calls of `op` (whose first argument matches `target`, when given) throw
   * `error()` instead of acting: `engineDown` for a transient failure, `refused` for a permanent one.
   */
  failNext(op: RuntimeOp, opts: { error?: () => Error; times?: number; target?: string | RegExp } = {}): void {
    this.injections.push({ op, match: matcher(opts.target), error: opts.error ?? (() => refused(`${op} refused (injected)`)), times: opts.times ?? 1 });
  }

  /** The next call of `op` (on `target`) blocks at its start until released. */
  hold(op: RuntimeOp, target?: string | RegExp): HoldHandle {
    let reached!: () => void;
    let release!: () => void;
    const reachedP = new Promise<void>((r) => (reached = r));
    const releaseP = new Promise<void>((r) => (release = r));
    this.holds.push({ op, match: matcher(target), reached, release: releaseP });
    return { reached: reachedP, release };
  }

  /** Answer some execs differently (first handler that returns a result wins). */
  onExec(handler: ExecHandler): () => void {
    this.handlers.unshift(handler);
    return () => {
      this.handlers = this.handlers.filter((h) => h !== handler);
    };
  }

  /** What `containerStats` reports for a container from now on (CPU time is cumulative, in ns). */
  setUsage(name: string, usage: { cpuUsageNs?: number; memoryBytes?: number }): void {
    const c = this.mustGet(name);
    c.usage = { cpuUsageNs: usage.cpuUsageNs ?? c.usage?.cpuUsageNs ?? 0, memoryBytes: usage.memoryBytes ?? c.usage?.memoryBytes ?? 0 };
  }

  /** The TCP sockets a gateway's namespace holds (what `cat /proc/net/tcp` in it lists). */
  setTcpConnections(name: string, tcp: MemoryTcpConnection[]): void {
    this.mustGet(name).tcp = tcp;
  }

  /** The container's process ended by itself (a crash, an OOM kill). */
  crash(name: string): void {
    const c = this.mustGet(name);
    c.running = false;
  }

  /** A file as the container sees it (its volume's, under the mount target). */
  fileOf(name: string, path: string): Buffer | null {
    const c = this.containers.get(name);
    if (!c) return null;
    const { files, key } = this.fsOf(c, path);
    return files.get(key)?.content ?? null;
  }

  /** Management-network address → the host container answering SSH there, if its sshd could. */
  sshTarget(address: string): MemoryContainer | null {
    for (const gw of this.containers.values()) {
      if (gw.kind !== "gateway" || !gw.running || !Object.values(gw.networks).includes(address)) continue;
      for (const h of this.containers.values()) {
        if (h.kind === "host" && h.joins === gw.name && h.running) return h;
      }
    }
    return null;
  }

  /**
   * An `SshProbe` (worker/hosts/ssh-ready.ts) for this engine: true when a running host container
   * sits behind the address, in a running gateway, and holds the pinned host key.
   */
  readonly sshProbe = async (o: { host: string; pinnedHostKey: string }): Promise<boolean> => {
    const h = this.sshTarget(o.host);
    if (!h) return false;
    const pub = this.fileOf(h.name, "/etc/ssh/ccp/ssh_host_ed25519_key.pub")?.toString("utf8").trim();
    return pub !== undefined && pub === o.pinnedHostKey.trim();
  };

  // --------------------------------------------------------------------------------------------
  // Runtime
  // --------------------------------------------------------------------------------------------

  async ping(): Promise<boolean> {
    this.calls.push({ op: "ping" });
    return this.engineUp;
  }

  async imageExists(ref: string): Promise<boolean> {
    await this.enter("imageExists", ref);
    return this.images.has(ref);
  }

  async imageId(ref: string): Promise<string | null> {
    await this.enter("imageId", ref);
    return this.images.get(ref) ?? null;
  }

  /** The in-memory engine has no image contents: exporting and importing are not modelled. */
  async exportImage(ref: string): Promise<NodeJS.ReadableStream> {
    await this.enter("exportImage", ref);
    throw refused(`exportImage ${ref}: not modelled by the memory runtime`);
  }

  async importImage(): Promise<void> {
    await this.enter("importImage", "");
    throw refused("importImage: not modelled by the memory runtime");
  }

  async deleteImage(ref: string): Promise<void> {
    await this.enter("deleteImage", ref);
    this.images.delete(ref);
  }

  async ensureNetwork(name: string, opts: { subnet?: string; internal?: boolean }): Promise<NetworkInfo> {
    await this.enter("ensureNetwork", name);
    const existing = this.networks.get(name);
    if (existing) return info(existing);
    const subnet = opts.subnet ?? `10.${200 + Math.floor(this.nextSubnet / 256)}.${this.nextSubnet++ % 256}.0/24`;
    const base = subnetBase(subnet);
    if (base === null) throw new ContainerOperationError(`network ${name}: invalid subnet ${subnet}`);
    const net = { name, subnet, gateway: ipOf(base + 1), internal: opts.internal ?? false, next: 2 };
    this.networks.set(name, net);
    return info(net);
  }

  async listNetworks(): Promise<NetworkInfo[]> {
    await this.enter("listNetworks");
    return [...this.networks.values()].map(info);
  }

  async inspectContainer(name: string): Promise<ContainerState | null> {
    await this.enter("inspectContainer", name);
    const c = this.containers.get(name);
    return c ? stateOf(c) : null;
  }

  async createGateway(spec: GatewaySpec): Promise<void> {
    await this.enter("createGateway", spec.name);
    let c = this.containers.get(spec.name);
    if (!c) {
      this.requireImage(spec.image);
      c = this.newContainer(spec.name, "gateway", spec.image, spec.labels, spec);
    }
    if (!c.running) {
      // Every network attached before the first start, as the Docker runtime does.
      for (const net of spec.networks) if (!c.networks[net]) c.networks[net] = this.allocate(net);
      this.uploadAll(c, spec.files);
    }
  }

  async createHost(spec: HostSpec): Promise<void> {
    await this.enter("createHost", spec.name);
    let c = this.containers.get(spec.name);
    if (!c) {
      this.requireImage(spec.image);
      if (!this.containers.has(spec.gatewayName)) throw new ContainerOperationError(`create host ${spec.name}: no such container ${spec.gatewayName}`);
      // Docker creates a named volume on first use; the worker always prepares it first.
      if (!this.volumes.has(spec.volume.name)) this.volumes.set(spec.volume.name, { name: spec.volume.name, labels: {}, options: {}, files: new Map() });
      c = this.newContainer(spec.name, "host", spec.image, spec.labels, spec);
      c.mount = { volume: spec.volume.name, target: spec.volume.target };
      c.joins = spec.gatewayName;
    }
    if (!c.running) this.uploadAll(c, spec.files);
  }

  async createProbe(spec: ProbeSpec): Promise<void> {
    await this.enter("createProbe", spec.name);
    this.requireImage(spec.image);
    this.containers.delete(spec.name);
    const c = this.newContainer(spec.name, "probe", spec.image, spec.labels, spec);
    c.joins = spec.joinContainer;
    this.start(c);
  }

  async startContainer(name: string): Promise<void> {
    await this.enter("startContainer", name);
    const c = this.mustGet(name);
    if (c.running) return;
    if (c.joins) {
      const ns = this.containers.get(c.joins);
      if (!ns?.running) throw new ContainerOperationError(`start ${name}: joining network namespace of ${c.joins}: container is not running`);
    }
    if (c.mount) {
      const v = this.volumes.get(c.mount.volume);
      // A bind volume over a home filesystem that is not mounted: the directory does not exist.
      const device = v?.options.device;
      if (device && ![...this.disks.entries()].some(([k, d]) => d.mounted && device === `${k}/home`)) {
        throw new ContainerOperationError(`start ${name}: error while mounting volume: ${device}: no such file or directory`);
      }
    }
    this.start(c);
  }

  async stopContainer(name: string, _graceSeconds: number): Promise<void> {
    await this.enter("stopContainer", name);
    const c = this.containers.get(name);
    if (c) this.stop(c);
  }

  async restartContainer(name: string, _graceSeconds: number): Promise<void> {
    await this.enter("restartContainer", name);
    const c = this.mustGet(name);
    this.stop(c);
    this.start(c);
  }

  async removeContainer(name: string): Promise<void> {
    await this.enter("removeContainer", name);
    const c = this.containers.get(name);
    if (!c) return;
    this.stop(c);
    this.containers.delete(name);
  }

  async renameContainer(name: string, to: string): Promise<void> {
    await this.enter("renameContainer", name);
    const c = this.mustGet(name);
    if (this.containers.has(to)) throw new Error(`memory runtime: ${to} exists`);
    this.containers.delete(name);
    c.name = to;
    this.containers.set(to, c);
  }

  async ensureVolume(name: string, labels: Record<string, string>, opts: { bindDevice?: string } = {}): Promise<void> {
    await this.enter("ensureVolume", name);
    if (this.volumes.has(name)) return;
    const options: Record<string, string> = opts.bindDevice ? { type: "none", o: "bind", device: opts.bindDevice } : {};
    this.volumes.set(name, { name, labels: { ...labels }, options, files: new Map() });
  }

  async inspectVolume(name: string): Promise<VolumeState | null> {
    await this.enter("inspectVolume", name);
    const v = this.volumes.get(name);
    return v ? { name: v.name, labels: { ...v.labels }, options: { ...v.options } } : null;
  }

  async ensureDiskAgent(spec: DiskAgentSpec): Promise<{ pid: number }> {
    await this.enter("ensureDiskAgent", spec.name);
    let c = this.containers.get(spec.name);
    if (c && Object.entries(spec.labels).some(([k, v]) => c!.labels[k] !== v)) {
      this.containers.delete(spec.name);
      c = undefined;
    }
    if (!c) {
      this.requireImage(spec.image);
      c = this.newContainer(spec.name, "disk-agent", spec.image, spec.labels, spec);
    }
    if (!c.running) this.start(c);
    return { pid: c.pid };
  }

  async removeVolume(name: string): Promise<void> {
    await this.enter("removeVolume", name);
    for (const c of this.containers.values()) {
      if (c.mount?.volume === name) throw new ContainerOperationError(`remove volume ${name}: volume is in use by ${c.name}`);
    }
    this.volumes.delete(name);
  }

  /**
   * The volume's files as one stream (JSON here, a tar on a real engine): what a host move copies.
   * The helper's image must be present, as on a real engine.
   */
  async exportVolume(name: string, helper: VolumeHelperSpec): Promise<VolumeExport> {
    await this.enter("exportVolume", name);
    this.requireImage(helper.image);
    const v = this.volumes.get(name);
    if (!v) throw new ContainerOperationError(`export volume ${name}: no such volume`);
    const entries = [...v.files].map(([path, f]) => ({ path, mode: f.mode, content: f.content.toString("base64") }));
    return { stream: Readable.from([Buffer.from(JSON.stringify(entries))]), done: Promise.resolve() };
  }

  /** Extract what exportVolume produced into the volume; answers the length and sha256 it read. */
  async importVolume(name: string, tar: NodeJS.ReadableStream, helper: VolumeHelperSpec): Promise<{ sha256: string; bytes: number }> {
    await this.enter("importVolume", name);
    this.requireImage(helper.image);
    const v = this.volumes.get(name);
    if (!v) throw new ContainerOperationError(`import volume ${name}: no such volume`);
    const chunks: Buffer[] = [];
    for await (const c of tar) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
    const data = Buffer.concat(chunks);
    let entries: { path: string; mode: number; content: string }[];
    try {
      entries = JSON.parse(data.toString("utf8")) as typeof entries;
    } catch {
      throw new ContainerOperationError(`import volume ${name}: not an archive`);
    }
    for (const e of entries) v.files.set(e.path, { mode: e.mode, content: Buffer.from(e.content, "base64") });
    return { sha256: sha256(data), bytes: data.length };
  }

  async exec(name: string, argv: string[], opts: ExecCall["opts"] = {}): Promise<ExecResult> {
    await this.enter("exec", name);
    const c = this.mustGet(name);
    if (!c.running) throw new ContainerOperationError(`exec in ${name}: container ${name} is not running`);
    const call: ExecCall = { container: c, argv, opts };
    for (const h of this.handlers) {
      const r = await h(call, this);
      if (r) return r;
    }
    return this.builtinExec(call);
  }

  async putFiles(name: string, dir: string, files: FileSpec[], dirs: DirSpec[] = []): Promise<void> {
    await this.enter("putFiles", name);
    this.upload(this.mustGet(name), dir, files, dirs);
  }

  async readFile(name: string, path: string): Promise<Buffer | null> {
    await this.enter("readFile", name);
    this.mustGet(name);
    return this.fileOf(name, path);
  }

  async listManagedContainers(): Promise<ContainerState[]> {
    await this.enter("listManagedContainers");
    return [...this.containers.values()].filter((c) => c.labels["cloud-cli-proxy.managed"] === "true" && c.kind !== "disk-agent").map(stateOf);
  }

  async listManagedVolumes(): Promise<VolumeState[]> {
    await this.enter("listManagedVolumes");
    return [...this.volumes.values()]
      .filter((v) => v.labels["cloud-cli-proxy.managed"] === "true")
      .map((v) => ({ name: v.name, labels: { ...v.labels }, options: { ...v.options } }));
  }

  async containerStats(name: string): Promise<ContainerStats | null> {
    await this.enter("containerStats", name);
    const c = this.containers.get(name);
    if (!c?.running) return null;
    // The engine's clock: strictly increasing, so two readings are never at the same instant.
    return { cpuUsageNs: c.usage?.cpuUsageNs ?? 0, memoryBytes: c.usage?.memoryBytes ?? 0, at: this.now() };
  }

  // --------------------------------------------------------------------------------------------
  // Internals
  // --------------------------------------------------------------------------------------------

  /** Every call: logged, held or failed as the test asked, and async like a real engine. */
  private async enter(op: RuntimeOp, target?: string): Promise<void> {
    this.calls.push({ op, ...(target !== undefined ? { target } : {}) });
    const hold = this.holds.find((h) => h.op === op && (!h.match || h.match(target)));
    if (hold) {
      this.holds = this.holds.filter((h) => h !== hold);
      hold.reached();
      await hold.release;
    }
    // A real engine answers on a later tick: callers must never rely on synchronous effects.
    await new Promise<void>((r) => setImmediate(r));
    if (!this.engineUp) throw engineDown();
    const inj = this.injections.find((i) => i.op === op && (!i.match || i.match(target)));
    if (inj) {
      if (--inj.times <= 0) this.injections = this.injections.filter((i) => i !== inj);
      throw inj.error();
    }
  }

  private now(): Date {
    this.lastTime = Math.max(Date.now(), this.lastTime + 1);
    return new Date(this.lastTime);
  }

  private mustGet(name: string): MemoryContainer {
    const c = this.containers.get(name);
    if (!c) throw new ContainerOperationError(`${name}: no such container`);
    return c;
  }

  private requireImage(ref: string): void {
    if (!this.images.has(ref)) throw new ContainerOperationError(`no such image: ${ref}`);
  }

  private newContainer(name: string, kind: ContainerKind, image: string, labels: Record<string, string>, spec: MemoryContainer["spec"]): MemoryContainer {
    const c: MemoryContainer = {
      id: randomBytes(32).toString("hex"),
      name,
      kind,
      image,
      imageId: this.images.get(image) ?? "",
      labels: { ...labels },
      networks: {},
      running: false,
      startedAt: null,
      createdAt: this.now(),
      files: new Map(),
      spec,
      pid: 0,
      gatewayStatus: "ready",
      uploads: [],
    };
    this.containers.set(name, c);
    return c;
  }

  private start(c: MemoryContainer): void {
    c.running = true;
    c.startedAt = this.now();
    c.pid = this.nextPid++;
  }

  private stop(c: MemoryContainer): void {
    if (!c.running) return;
    c.running = false;
    c.pid = 0;
    // tmpfs mounts go with the process.
    for (const k of [...c.files.keys()]) if (k.startsWith("/tmp/") || k.startsWith("/var/tmp/")) c.files.delete(k);
    // A probe in its network namespace ends with it.
    for (const other of this.containers.values()) if (other.joins === c.name && other.kind === "probe") other.running = false;
  }

  private allocate(netName: string): string {
    const net = this.networks.get(netName);
    if (!net) throw new ContainerOperationError(`network ${netName} not found`);
    return ipOf(subnetBase(net.subnet)! + net.next++);
  }

  /** The file map and key a path of a container lives in (its home volume under the mount). */
  private fsOf(c: MemoryContainer, path: string): { files: Map<string, MemoryFile>; key: string } {
    const abs = posix.normalize(posix.isAbsolute(path) ? path : `/${path}`);
    if (c.mount) {
      const t = c.mount.target;
      const v = this.volumes.get(c.mount.volume);
      if (v && (abs === t || abs.startsWith(`${t}/`))) return { files: v.files, key: abs.slice(t.length).replace(/^\//, "") };
    }
    return { files: c.files, key: abs };
  }

  private uploadAll(c: MemoryContainer, groups: UploadGroup[]): void {
    for (const g of groups) this.upload(c, g.dir, g.files, g.dirs ?? []);
  }

  private upload(c: MemoryContainer, dir: string, files: FileSpec[], _dirs: DirSpec[]): void {
    for (const f of files) {
      const { files: fs, key } = this.fsOf(c, posix.join(dir, f.name));
      fs.set(key, { content: Buffer.from(f.content), mode: f.mode });
    }
    c.uploads.push({ dir, files: files.map((f) => f.name) });
  }

  private readText(c: MemoryContainer, path: string): string | null {
    const { files, key } = this.fsOf(c, path);
    return files.get(key)?.content.toString("utf8") ?? null;
  }

  private writeText(c: MemoryContainer, path: string, content: string, mode = 0o600): void {
    const { files, key } = this.fsOf(c, path);
    files.set(key, { content: Buffer.from(content), mode });
  }

  private removeTree(c: MemoryContainer, path: string): void {
    const { files, key } = this.fsOf(c, path);
    for (const k of [...files.keys()]) if (k === key || k.startsWith(`${key}/`)) files.delete(k);
  }

  private gatewayStatusJson(c: MemoryContainer): string {
    const generation = Number(this.readText(c, "/etc/ccp/active/generation")?.trim() ?? 0) || 0;
    const mode = this.readText(c, "/etc/ccp/active/mode")?.trim() ?? "blocked";
    const error = c.gatewayStatus === "failed" ? "the engine did not come up (memory runtime)" : null;
    return JSON.stringify({ generation, mode, status: c.gatewayStatus, engine: "none", engine_restarts: 0, ruleset_restores: 0, error });
  }

  /** The programs of the images that the worker runs, as far as the flows rely on them. */
  private builtinExec({ container: c, argv, opts }: ExecCall): ExecResult {
    const [cmd, ...args] = argv;
    if (c.kind === "gateway" && cmd === "ccp-gateway" && args[0] === "status") return ok(`${this.gatewayStatusJson(c)}\n`);
    if (c.kind === "gateway" && cmd === "ccp-gateway" && args[0] === "apply-dir") {
      // As the image does: only /etc/ccp/next.<generation>, moved to next/, then applied.
      const m = /^\/etc\/ccp\/next\.(\d+)$/.exec(args[1] ?? "");
      if (!m) return { exitCode: 2, stdout: "", stderr: "usage: ccp-gateway apply-dir /etc/ccp/next.GENERATION\n" };
      const from = `${args[1]}/`;
      const moved = [...c.files.entries()].filter(([k]) => k.startsWith(from));
      this.removeTree(c, "/etc/ccp/next");
      for (const [k, f] of moved) c.files.set(`/etc/ccp/next/${k.slice(from.length)}`, f);
      for (const k of [...c.files.keys()]) if (k.startsWith("/etc/ccp/next.")) c.files.delete(k);
      return this.builtinExec({ container: c, argv: ["ccp-gateway", "apply"], opts });
    }
    if (c.kind === "gateway" && cmd === "ccp-gateway" && args[0] === "apply") {
      const prefix = "/etc/ccp/next/";
      const next = [...c.files.entries()].filter(([k]) => k.startsWith(prefix));
      if (!next.length) return { exitCode: 1, stdout: this.gatewayStatusJson(c), stderr: "nothing to apply" };
      this.removeTree(c, "/etc/ccp/active");
      for (const [k, f] of next) c.files.set(`/etc/ccp/active/${k.slice(prefix.length)}`, f);
      this.removeTree(c, "/etc/ccp/next");
      return ok(`${this.gatewayStatusJson(c)}\n`);
    }
    if (c.kind === "gateway" && cmd === "cat" && args[0] === "/proc/net/tcp") return ok(procNetTcp(c.tcp ?? []));
    if (cmd === "rm" && args[0] === "-rf" && args.length >= 2) {
      for (const p of args.slice(1)) this.removeTree(c, p);
      return ok();
    }
    if (cmd === "sha256sum") {
      const lines: string[] = [];
      for (const p of args) {
        const content = this.readText(c, p);
        if (content === null) return { exitCode: 1, stdout: lines.join(""), stderr: `sha256sum: ${p}: No such file or directory\n` };
        lines.push(`${sha256(content)}  ${p}\n`);
      }
      return ok(lines.join(""));
    }
    if (c.kind === "host" && cmd === "sh" && args[0] === "-c") {
      const script = args[1] ?? "";
      const home = args[3] ?? "";
      const file = `${home}/.ssh/authorized_keys`;
      if (script.includes("exec dd if=")) {
        const content = this.readText(c, file);
        return content === null ? fail(2, "") : ok(content);
      }
      if (script.includes("cat >")) {
        this.writeText(c, file, opts.stdin ?? "");
        return ok();
      }
    }
    if (c.kind === "disk-agent" && cmd === "sh" && args[0] === "-c") return this.diskAgent(args.slice(4));
    return fail(127, `memory runtime: no program for ${JSON.stringify(argv).slice(0, 200)} in ${c.kind} ${c.name}\n`);
  }

  /** The disk agent's script (worker/hosts/disk.ts): op dir id mb uid. */
  private diskAgent([op, dir, id, mb]: string[]): ExecResult {
    const key = `${dir}/${id}`;
    const disk = this.disks.get(key);
    switch (op) {
      case "ensure":
        if (disk) disk.mounted = true;
        else this.disks.set(key, { mounted: true, sizeMb: Number(mb) });
        return ok();
      case "mount":
        if (!disk) return fail(3, `home disk image ${key}.img is missing\n`);
        disk.mounted = true;
        return ok();
      case "remove":
        this.disks.delete(key);
        return ok();
      case "status":
        return ok(`${disk?.mounted ? "mounted" : "unmounted"}\n${disk ? "image\n0" : "no-image"}\n`);
      default:
        return fail(2, "");
    }
  }
}

function matcher(target: string | RegExp | undefined): ((t: string | undefined) => boolean) | undefined {
  if (target === undefined) return undefined;
  return (t) => t !== undefined && (typeof target === "string" ? t === target : target.test(t));
}

/** The network address of an IPv4 CIDR as a number, or null. */
function subnetBase(cidr: string): number | null {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) return null;
  const len = Number(m[5]);
  const n = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return (n & mask) >>> 0;
}

/** /proc/net/tcp as the kernel prints it: little-endian hex addresses, hex ports, hex state. */
function procNetTcp(conns: MemoryTcpConnection[]): string {
  const hexIp = (ip: string) =>
    ip
      .split(".")
      .map((o) => Number(o).toString(16).padStart(2, "0").toUpperCase())
      .reverse()
      .join("");
  const hexPort = (p: number) => p.toString(16).padStart(4, "0").toUpperCase();
  const head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
  return (
    head +
    conns
      .map((t, i) => `${String(i).padStart(4)}: ${hexIp("10.0.0.2")}:${hexPort(t.localPort)} ${hexIp(t.remoteAddress)}:${hexPort(t.remotePort ?? 40000 + i)} ${(t.state ?? 1).toString(16).padStart(2, "0").toUpperCase()} 00000000:00000000 00:00000000 00000000     0        0 ${1000 + i} 1 0000000000000000 20 4 30 10 -1\n`)
      .join("")
  );
}

const ipOf = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");

function info(n: NetworkInfo): NetworkInfo {
  return { name: n.name, gateway: n.gateway, subnet: n.subnet };
}

function stateOf(c: MemoryContainer): ContainerState {
  return {
    id: c.id,
    name: c.name,
    running: c.running,
    startedAt: c.startedAt,
    labels: { ...c.labels },
    networks: { ...c.networks },
    image: c.image,
    imageId: c.imageId,
    createdAt: c.createdAt,
  };
}
