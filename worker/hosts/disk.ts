import type { WorkerDeps } from "../deps.js";
import type { VolumeState } from "../runtime/runtime.js";
import { TaskError } from "../tasks/task-error.js";
import { HOST_UID, LABEL_MANAGED, LABEL_ROLE } from "./names.js";

/**
 * Each host's home is a fixed-size ext4 filesystem (issue 10 §2 "Disk"; README "Disk and logs"):
 * a sparse image `<dir>/<hostId>.img`, loop-mounted at `<dir>/<hostId>/` on the engine's machine.
 * The home volume is a local-driver bind of `<dir>/<hostId>/home`, a directory that exists only
 * inside the mounted filesystem: when the mount is missing (the machine rebooted) the container
 * start fails instead of writing to the machine's own disk.
 *
 * The worker never mounts anything itself (it runs unprivileged, and later talks to remote
 * engines): it execs the fixed script below in the engine's disk agent, a container with
 * CAP_SYS_ADMIN, the machine's PID namespace and access to loop devices only. The script enters
 * the mount namespace of the engine that runs the agent — that of the agent's containerd shim,
 * the parent of its PID 1 — which is where dockerd mounts volumes, so the loop mounts are seen by
 * it (and survive the agent). Not PID 1's namespace: it is the same one on an ordinary machine,
 * but PID 1 may refuse to be inspected (this test machine's init does), and the engine's is the
 * one that matters. Only validated arguments reach the script, as positional parameters — never
 * interpolated into it.
 */
export const DISK_AGENT_NAME = "ccp-disk-agent";

export const DISK_MIN_MB = 256;
export const DISK_MAX_MB = 1048576;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DIR_RE = /^(\/[A-Za-z0-9._-]+)+$/;

/**
 * ensure <dir> <id> <mb> <uid>: create the image if absent (in a temporary file renamed into place,
 *   so an image that exists always holds a filesystem), mount it unless mounted, create `home`.
 * mount <dir> <id> 0 <uid>: the same for a home that must already exist (exit 3 if its image is gone).
 * remove <dir> <id> 0 0: unmount (lazily if busy), delete the image and the mount point.
 *
 * mkfs: -m 0 (no root-reserved blocks: nothing runs as root in there); lazy inode-table and
 * journal init, and `noinit_itable` at mount: the image is a fresh sparse file, whose holes read
 * as zeros, so nothing needs zeroing and the file stays as small as its data.
 */
const SCRIPT = [
  "set -eu",
  'op=$1 dir=$2 id=$3 mb=$4 uid=$5',
  'img="$dir/$id.img" mnt="$dir/$id"',
  'mount_it() {',
  '  mkdir -p "$mnt"',
  '  if ! mountpoint -q "$mnt"; then mount -o loop,nosuid,nodev,noinit_itable "$img" "$mnt"; fi',
  '  if [ ! -d "$mnt/home" ]; then mkdir -m 0755 "$mnt/home"; chown "$uid:$uid" "$mnt/home"; fi',
  '}',
  'case $op in',
  'ensure)',
  '  mkdir -p "$dir"',
  '  chmod 0700 "$dir"',
  '  if [ ! -f "$img" ]; then',
  '    rm -f "$img.tmp"',
  '    truncate -s "${mb}M" "$img.tmp"',
  '    mkfs.ext4 -q -F -m 0 -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "$img.tmp"',
  '    mv -f "$img.tmp" "$img"',
  '  fi',
  '  mount_it ;;',
  'mount)',
  '  if [ ! -f "$img" ]; then echo "home disk image $img is missing" >&2; exit 3; fi',
  '  mount_it ;;',
  'remove)',
  '  if mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt" || umount -l "$mnt"; fi',
  '  rm -f "$img" "$img.tmp"',
  '  if [ -d "$mnt" ]; then rmdir "$mnt"; fi ;;',
  'status)',
  '  if mountpoint -q "$mnt" 2>/dev/null; then echo mounted; else echo unmounted; fi',
  '  if [ -f "$img" ]; then echo image; du -k "$img" | cut -f1; else echo no-image; fi ;;',
  '*) exit 2 ;;',
  "esac",
].join("\n");

/** In the agent: find the engine's mount namespace (the shim that started the agent) and enter it. */
const ENTER = [
  "set -eu",
  'shim=$(sed -n "s/^PPid:[[:space:]]*//p" "/proc/$1/status")',
  'case $shim in "" | 0 | *[!0-9]*) echo "no engine process above the agent" >&2; exit 4 ;; esac',
  "shift",
  'exec nsenter -t "$shim" -m -- sh -c "$0" ccp-disk "$@"',
].join("\n");

export type DiskOp = "ensure" | "mount" | "remove" | "status";

/** The argv of one agent call; throws on anything but a well-formed id, directory and size. */
export function diskAgentArgv(agentPid: number, op: DiskOp, dir: string, hostId: string, sizeMb = 0): string[] {
  if (!Number.isSafeInteger(agentPid) || agentPid < 2) throw new Error("agent pid must be an integer above 1");
  if (!["ensure", "mount", "remove", "status"].includes(op)) throw new Error(`unknown disk operation ${String(op)}`);
  if (!UUID_RE.test(hostId)) throw new Error("host id must be a lowercase uuid");
  if (!DIR_RE.test(dir) || dir.split("/").some((s) => s === "." || s === "..")) throw new Error("disk directory must be an absolute path");
  if (op === "ensure") {
    if (!Number.isSafeInteger(sizeMb) || sizeMb < DISK_MIN_MB || sizeMb > DISK_MAX_MB) {
      throw new Error(`disk size must be an integer between ${DISK_MIN_MB} and ${DISK_MAX_MB} MiB`);
    }
  } else sizeMb = 0;
  const uid = op === "remove" ? 0 : HOST_UID;
  return ["sh", "-c", ENTER, SCRIPT, String(agentPid), op, dir, hostId, String(sizeMb), String(uid)];
}

/** The directory a home volume's bind lives in, or null for a plain (uncapped) volume. */
export function diskDirOf(vol: Pick<VolumeState, "options">, hostId: string): string | null {
  const o = vol.options;
  if (o.type !== "none" || o.o !== "bind" || !o.device) return null;
  const suffix = `/${hostId}/home`;
  if (!o.device.endsWith(suffix)) return null;
  const dir = o.device.slice(0, -suffix.length);
  return DIR_RE.test(dir) ? dir : null;
}

export const homeDevice = (dir: string, hostId: string) => `${dir}/${hostId}/home`;

/** Run one operation in the disk agent (created and started on demand). */
export async function runDiskOp(deps: WorkerDeps, op: DiskOp, dir: string, hostId: string, sizeMb = 0): Promise<string> {
  const { pid } = await deps.runtime.ensureDiskAgent({
    name: DISK_AGENT_NAME,
    image: deps.config.GATEWAY_IMAGE,
    // Bump the version when the agent's container spec changes: the runtime replaces an older one.
    labels: { [LABEL_MANAGED]: "true", [LABEL_ROLE]: "disk-agent", "cloud-cli-proxy.agent-version": "1" },
  });
  const argv = diskAgentArgv(pid, op, dir, hostId, sizeMb);
  // mkfs of a large sparse image takes a few seconds; output is ours (the script), tiny.
  const r = await deps.runtime.exec(DISK_AGENT_NAME, argv, { timeoutMs: 180_000, maxOutputBytes: 64 * 1024 });
  if (r.exitCode !== 0) {
    const detail = (r.stderr || r.stdout).trim().slice(0, 500);
    throw new TaskError("disk_setup_failed", `home disk ${op} failed (exit ${r.exitCode}): ${detail}`);
  }
  return r.stdout;
}
