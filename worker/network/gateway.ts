import { createHash } from "node:crypto";
import type { WorkerDeps } from "../deps.js";
import type { DirSpec, UploadGroup } from "../runtime/runtime.js";
import { TaskError } from "../tasks/task-error.js";
import { backoff, sleep } from "./backoff.js";
import { GATEWAY_FILE_NAMES, type GatewayFiles, gatewayFileSpecs } from "./gateway-files.js";

/** `ccp-gateway status` (docs/egress.md#gateway). */
export interface GatewayStatus {
  generation: number;
  mode: string;
  status: "starting" | "ready" | "failed";
  engine: string;
  engine_restarts: number;
  ruleset_restores: number;
  error: string | null;
}

/** The status poll's back-off cap, for a gateway whose image has no `ccp-gateway wait`. */
export const STATUS_POLL_MS = 100;

/** A new generation: increases with every apply (milliseconds, and never below the last one + 1). */
export const nextGeneration = (current = 0): number => Math.max(Date.now(), current + 1);

/** The upload group of a first start: /etc/ccp/active/* (0600) in directories of mode 0700. */
export function activeUpload(files: GatewayFiles): UploadGroup {
  const dirs: DirSpec[] = [
    { name: "etc/ccp", mode: 0o700 },
    { name: "etc/ccp/active", mode: 0o700 },
  ];
  return { dir: "/", dirs, files: gatewayFileSpecs(files, "active") };
}

export function parseGatewayStatus(stdout: string): GatewayStatus | null {
  try {
    const s = JSON.parse(stdout.trim()) as GatewayStatus;
    if (typeof s?.status !== "string" || typeof s.generation !== "number") return null;
    return s;
  } catch {
    return null;
  }
}

export async function readGatewayStatus(deps: Pick<WorkerDeps, "runtime">, name: string): Promise<GatewayStatus | null> {
  const r = await deps.runtime.exec(name, ["ccp-gateway", "status"], { timeoutMs: 5000 }).catch(() => null);
  if (!r || r.exitCode !== 0) return null;
  return parseGatewayStatus(r.stdout);
}

/**
 * Waits for the gateway to report `ready` for the generation just written, for at most
 * GATEWAY_READY_TIMEOUT_SECONDS (docs/egress.md#gateway). Not ready in time, or `failed` →
 * `tunnel_setup_failed`. With `generation`, an older configuration reporting ready does not count.
 *
 * One `ccp-gateway wait` exec blocks inside the gateway and returns within milliseconds of the
 * supervisor's state change (no exec every 200 ms). A gateway image without that command (exit 2),
 * or an exec that fails, falls back to polling `ccp-gateway status` with a back-off from 5 ms.
 */
export async function waitGatewayReady(
  deps: Pick<WorkerDeps, "runtime" | "config">,
  name: string,
  opts: { generation?: number } = {},
): Promise<GatewayStatus> {
  const seconds = deps.config.GATEWAY_READY_TIMEOUT_SECONDS;
  const deadline = Date.now() + seconds * 1000;
  const isCurrent = (s: GatewayStatus | null): s is GatewayStatus =>
    s !== null && (opts.generation === undefined || s.generation === opts.generation);
  const settle = (s: GatewayStatus): GatewayStatus | null => {
    if (!isCurrent(s)) return null;
    if (s.status === "ready") return s;
    if (s.status === "failed") {
      throw new TaskError("tunnel_setup_failed", `the gateway failed to set up its egress (${s.error ?? "unknown error"})`);
    }
    return null;
  };
  let last: GatewayStatus | null = null;
  const blocking = await deps.runtime
    .exec(name, ["ccp-gateway", "wait", opts.generation === undefined ? "any" : String(opts.generation), String(seconds)], {
      // The wait's own bound is inside the gateway; this one only has to outlast Docker.
      timeoutMs: (seconds + 10) * 1000,
    })
    .catch(() => null);
  if (blocking && (blocking.exitCode === 0 || blocking.exitCode === 1)) {
    last = parseGatewayStatus(blocking.stdout);
    const done = last && settle(last);
    if (done) return done;
  }
  const delays = backoff({ firstMs: 5, capMs: STATUS_POLL_MS });
  for (;;) {
    last = (await readGatewayStatus(deps, name)) ?? last;
    const done = last && settle(last);
    if (done) return done;
    if (Date.now() > deadline) {
      throw new TaskError("tunnel_setup_failed", `the gateway was not ready within ${seconds} s`);
    }
    await sleep(delays.next(deadline));
  }
}

/**
 * sha256 of each configuration file but `generation`, in a fixed order: what a running gateway
 * must have for it to count as configured as planned.
 */
const DIGESTED = GATEWAY_FILE_NAMES.filter((n) => n !== "generation");

export function filesDigest(files: GatewayFiles): string[] {
  return DIGESTED.map((n) => createHash("sha256").update(files[n]).digest("hex"));
}

/** Whether a running gateway's /etc/ccp/active/ holds exactly these files (generation aside). */
export async function gatewayHasFiles(deps: Pick<WorkerDeps, "runtime">, name: string, files: GatewayFiles): Promise<boolean> {
  const r = await deps.runtime
    .exec(name, ["sha256sum", ...DIGESTED.map((n) => `/etc/ccp/active/${n}`)], { timeoutMs: 5000 })
    .catch(() => null);
  if (!r || r.exitCode !== 0) return false;
  const got = r.stdout.trim().split("\n").map((l) => l.split(/\s+/)[0]);
  const want = filesDigest(files);
  return got.length === want.length && got.every((h, i) => h === want[i]);
}

/**
 * Live apply (docs/egress.md#gateway): the files go to /etc/ccp/next/ (emptied first, so no file of an older apply
 * survives), then `ccp-gateway apply` swaps the configuration under the kill switch. A failed
 * apply leaves the gateway fail-closed → `tunnel_setup_failed`.
 */
export async function applyGatewayFiles(
  deps: Pick<WorkerDeps, "runtime" | "config">,
  name: string,
  files: GatewayFiles,
  /** Also removed: an upload an older image could not take (applyGatewayLive). */
  alsoRemove?: string,
): Promise<void> {
  const clear = await deps.runtime.exec(name, ["rm", "-rf", "/etc/ccp/next", ...(alsoRemove ? [alsoRemove] : [])], { timeoutMs: 5000 });
  if (clear.exitCode !== 0) throw new TaskError("tunnel_setup_failed", "could not prepare the gateway for a new configuration");
  await deps.runtime.putFiles(name, "/", gatewayFileSpecs(files, "next"), [{ name: "etc/ccp/next", mode: 0o700 }]);
}

/**
 * A live apply of `files` as `generation` (docs/egress.md#live-apply) in two engine calls: the
 * files go to a directory of their own, /etc/ccp/next.<generation>/ (uploadNext: nothing older can
 * be mixed in, and no `rm` exec is needed first), and one `ccp-gateway apply-dir` exec moves it to
 * /etc/ccp/next/ and applies it (applyNext). A gateway image that predates `apply-dir` gets the
 * older path (clear next/, upload, apply), and the directory is removed with next/.
 */
export async function applyGatewayLive(
  deps: Pick<WorkerDeps, "runtime" | "config">,
  name: string,
  files: GatewayFiles,
  generation: number,
): Promise<GatewayStatus> {
  await uploadNext(deps, name, files, generation);
  return applyNext(deps, name, files, generation);
}

const nextDir = (generation: number) => `next.${generation}` as const;

export async function uploadNext(deps: Pick<WorkerDeps, "runtime">, name: string, files: GatewayFiles, generation: number): Promise<void> {
  const dir = nextDir(generation);
  await deps.runtime.putFiles(name, "/", gatewayFileSpecs(files, dir), [{ name: `etc/ccp/${dir}`, mode: 0o700 }]);
}

export async function applyNext(
  deps: Pick<WorkerDeps, "runtime" | "config">,
  name: string,
  files: GatewayFiles,
  generation: number,
): Promise<GatewayStatus> {
  const dir = `/etc/ccp/${nextDir(generation)}`;
  const r = await deps.runtime.exec(name, ["ccp-gateway", "apply-dir", dir], {
    timeoutMs: (deps.config.GATEWAY_READY_TIMEOUT_SECONDS + 20) * 1000,
  });
  if (r.exitCode === 2 && r.stderr.includes("usage:") && !r.stderr.includes("apply-dir")) {
    await applyGatewayFiles(deps, name, files, dir);
    return reloadGateway(deps, name, generation);
  }
  return appliedStatus(r, generation);
}

function appliedStatus(r: { exitCode: number; stdout: string }, generation: number): GatewayStatus {
  const status = parseGatewayStatus(r.stdout);
  if (r.exitCode !== 0 || status?.status !== "ready" || status.generation !== generation) {
    throw new TaskError("tunnel_setup_failed", `the gateway could not apply the new configuration (${status?.error ?? `exit ${r.exitCode}`})`);
  }
  return status;
}

export async function reloadGateway(deps: Pick<WorkerDeps, "runtime" | "config">, name: string, generation: number): Promise<GatewayStatus> {
  const r = await deps.runtime.exec(name, ["ccp-gateway", "apply"], { timeoutMs: (deps.config.GATEWAY_READY_TIMEOUT_SECONDS + 20) * 1000 });
  return appliedStatus(r, generation);
}
