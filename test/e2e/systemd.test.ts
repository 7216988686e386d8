/**
 * Heavy stage: deploy/scripts/install.sh and uninstall.sh in a container booted with systemd as
 * PID 1 (README "Operations", systemd). The container (Debian bookworm from the local base image
 * plus systemd and postgresql-client, cached by a content-hash label) shares this machine's
 * network (its Postgres, Redis and the Docker bridges), its Docker socket (the installed worker
 * drives this machine's engine), its node binary (read-only, at the same path: Debian's nodejs is
 * too old) and the repository read-only at /src. Then:
 *
 *   install.sh → every unit active → /healthz ok → a user and a host over the API → SSH through
 *   the installed sshd with the real OpenSSH client → GET /entry/<shortId> 200 (api/scripts is
 *   installed) → the backup timer (installed with --backup-schedule every 5 s) fires and leaves a
 *   readable dump → install.sh again (no options) keeps the schedule and changes nothing → delete the
 *   host → uninstall.sh leaves no unit, /opt/cloud-cli-proxy, /etc/cloud-cli-proxy or user.
 *
 * Everything is unique to this run: a fresh, empty database (the api migrates it at start), the
 * Redis prefix, the loopback ports and the networks. HOST_DISK_LIMIT_MB=0: home disks need root
 * (mkfs, mount) and the installed worker runs as `cloudproxy`. No egress checks are configured.
 * Cleanup (container, host containers, networks, database) runs on failure too.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEnvironment } from "../../shared/config/env-file.js";
import { projectRoot } from "../../shared/paths.js";
import { createEmptyDatabase } from "../../shared/test/databases.js";
import { apiClient, must, removeNetworks, run, sshClient, stackEnvLines } from "../../shared/test/deploy-stack.js";
import { freePort, waitUntil } from "../../shared/test/processes.js";
import { instanceObjects, removeInstanceObjects } from "../../shared/test/worker-harness.js";

const id = randomBytes(4).toString("hex");
const PREFIX = `sd${id}`;
const CONTAINER = `ccp-systemd-${id}`;
const MGMT_NETWORK = `ccp-sd-${id}-mgmt`;
const UNDERLAY_NETWORK = `ccp-sd-${id}-underlay`;
const ADMIN_PASSWORD = `admin-${randomBytes(12).toString("hex")}`;
const IMAGE = "cloud-cli-proxy/test-systemd:latest";
const HASH_LABEL = "cloud-cli-proxy.content-hash";
const DOCKERFILE = [
  "FROM cloud-cli-proxy/base:bookworm",
  "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\",
  "      systemd systemd-sysv dbus postgresql-client && rm -rf /var/lib/apt/lists/*",
  "STOPSIGNAL SIGRTMIN+3",
  'CMD ["/sbin/init"]',
  "",
].join("\n");
const UNITS = ["cloud-cli-proxy-control-plane.service", "cloud-cli-proxy-worker@1.service", "cloud-cli-proxy-backup.timer"];

let dir: string;
let db: { name: string; url: string; drop: () => Promise<void> } | undefined;
let ports: { api: number; ssh: number };
let containerStarted = false;

const { api, waitForTask } = apiClient(() => `http://127.0.0.1:${ports.api}`);
let ssh: ReturnType<typeof sshClient>["ssh"];
let pinProxyHostKey: ReturnType<typeof sshClient>["pinProxyHostKey"];

/** A command inside the booted container. */
const inside = (args: string[], timeoutMs = 120_000) => run("docker", ["exec", CONTAINER, ...args], { timeoutMs });
const mustInside = (args: string[], timeoutMs = 120_000) => must("docker", ["exec", CONTAINER, ...args], { timeoutMs });

/** The systemd image, rebuilt only when its recipe changes (like deploy/images/build.sh). */
async function ensureImage(): Promise<void> {
  const hash = createHash("sha256").update(DOCKERFILE).digest("hex");
  const have = await run("docker", ["image", "inspect", "-f", `{{ index .Config.Labels "${HASH_LABEL}" }}`, IMAGE]);
  if (have.code === 0 && have.stdout.trim() === hash) return;
  await must("docker", ["build", "--network", "host", "-q", "--label", `${HASH_LABEL}=${hash}`, "--label", "cloud-cli-proxy.test=systemd", "-t", IMAGE, "-"], {
    stdin: DOCKERFILE,
    timeoutMs: 600_000,
  });
}

const install = (extra: string[] = []) =>
  mustInside(["bash", "/src/deploy/scripts/install.sh", "--env-file", "/root/ccp-test.env", ...nodeArgs, ...extra], 300_000);
/** Every 5 s, so the suite sees the timer itself start a backup rather than starting it by hand. */
const BACKUP_SCHEDULE = "*:*:0/5";
let nodeArgs: string[] = [];
const baseEnv = loadEnvironment();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ccp-systemd-"));
  await ensureImage();
  db = await createEmptyDatabase(baseEnv);
  ports = { api: await freePort(), ssh: await freePort() };
  writeFileSync(
    join(dir, "env"),
    [
      `DATABASE_URL=${db.url}`,
      `REDIS_URL=${baseEnv.REDIS_URL ?? "redis://127.0.0.1:6379"}`,
      ...stackEnvLines({ adminPassword: ADMIN_PASSWORD, ports, prefix: PREFIX, mgmtNetwork: MGMT_NETWORK, underlayNetwork: UNDERLAY_NETWORK }),
      // home disks need root (mkfs, mount); the installed worker runs as `cloudproxy`
      "HOST_DISK_LIMIT_MB=0",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  ({ ssh, pinProxyHostKey } = sshClient(dir, () => ports.ssh));

  // This machine's node at the same path; npm next to it when there is one (install.sh prunes
  // the dev packages with it; without it the whole node_modules is copied).
  const node = realpathSync(process.execPath);
  const npmDir = join(dirname(dirname(node)), "lib", "node_modules", "npm");
  const mounts = ["-v", `${node}:${node}:ro`];
  if (existsSync(join(npmDir, "bin", "npm-cli.js"))) mounts.push("-v", `${npmDir}:${npmDir}:ro`);
  if (!["/usr/bin", "/usr/local/bin"].includes(dirname(node))) nodeArgs = ["--node", node];

  containerStarted = true;
  await must("docker", [
    "run", "-d", "--name", CONTAINER, "--label", "cloud-cli-proxy.test=systemd",
    "--network", "host",
    "--cap-add", "SYS_ADMIN",
    "--security-opt", "apparmor=unconfined", "--security-opt", "seccomp=unconfined",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--cgroupns=host",
    "-v", "/var/run/docker.sock:/var/run/docker.sock",
    "-v", `${projectRoot}:/src:ro`,
    ...mounts,
    IMAGE,
  ]);
  await waitUntil("systemd running in the container", 60_000, async () => {
    const r = await inside(["systemctl", "is-system-running"], 10_000);
    return ["running", "degraded"].includes(r.stdout.trim()) ? true : undefined;
  });
  if (existsSync(join(npmDir, "bin", "npm-cli.js"))) {
    await mustInside(["sh", "-c", `[ -e "$1/npm" ] || ln -s "$2/bin/npm-cli.js" "$1/npm"`, "sh", dirname(node), npmDir]);
  }
  await must("docker", ["exec", "-i", CONTAINER, "sh", "-c", "umask 077 && cat > /root/ccp-test.env"], { stdin: readFileSync(join(dir, "env"), "utf8") });
}, 900_000);

afterAll(async () => {
  try {
    if (containerStarted) await run("docker", ["rm", "-f", "-v", CONTAINER], { timeoutMs: 120_000 });
  } finally {
    try {
      removeInstanceObjects(PREFIX);
    } catch {
      // best effort; the assertion in the last test already failed if anything was left
    }
    removeNetworks([MGMT_NETWORK, UNDERLAY_NETWORK]);
    await db?.drop().catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);

describe("systemd install (install.sh / uninstall.sh in a booted systemd)", () => {
  let admin: string;
  let host: { id: string; shortId: string; password: string };

  it("install.sh installs, enables and starts every unit; /healthz answers ok", async () => {
    const out = await install(["--backup-schedule", BACKUP_SCHEDULE]);
    expect(out).toContain("install: done");
    for (const u of UNITS) {
      const state = await waitUntil(`${u} active`, 60_000, async () => {
        const r = await inside(["systemctl", "is-active", u], 10_000);
        return r.stdout.trim() === "active" ? r.stdout.trim() : undefined;
      });
      expect(state).toBe("active");
    }
    // The rendered units run the node that was found, from /opt/cloud-cli-proxy.
    const unit = await mustInside(["cat", "/etc/systemd/system/cloud-cli-proxy-control-plane.service"]);
    expect(unit).toContain(`ExecStart=${realpathSync(process.execPath)} /opt/cloud-cli-proxy/dist/main.js api,sshd`);
    const env = await mustInside(["stat", "-c", "%a %U", "/etc/cloud-cli-proxy/env"]);
    expect(env.trim()).toBe("600 root");
    await waitUntil("/healthz ok", 120_000, async () => ((await api("GET", "/healthz").catch(() => undefined))?.body?.status === "ok" ? true : undefined));
  });

  it("creates a user and a host over the API, reaches it over SSH through the installed sshd, and serves /entry", async () => {
    const login = await api("POST", "/v1/auth/login", undefined, { username: "admin", password: ADMIN_PASSWORD });
    expect(login.status, login.text).toBe(200);
    admin = login.body.token;
    const user = await api("POST", "/v1/admin/users", admin, { username: `sd-${id}`, password: `pw-${randomBytes(8).toString("hex")}` });
    expect(user.status, user.text).toBe(201);
    const created = await api("POST", "/v1/admin/hosts", admin, { user_id: user.body.user.id });
    expect(created.status, created.text).toBe(202);
    expect(await waitForTask(admin, created.body.task_id)).toBe("succeeded");
    const rot = await api("POST", `/v1/admin/hosts/${created.body.host.id}/rotate-ssh-password`, admin);
    expect(rot.status, rot.text).toBe(200);
    host = { id: created.body.host.id, shortId: created.body.host.short_id, password: rot.body.ssh_password };

    const sql = postgres(db!.url, { max: 1 });
    try {
      const [row] = await sql`select public_key from system_keys where name = 'ssh_proxy_host_key'`;
      pinProxyHostKey(String(row!.public_key));
    } finally {
      await sql.end();
    }
    const r = await ssh(host.shortId, host.password, "id -un");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("workspace");

    // api/scripts/ is part of the installed package: the entry script is served, not a 500.
    const entry = await api("GET", `/entry/${host.shortId}`);
    expect(entry.status, entry.text).toBe(200);
    expect(entry.text).toContain(`SHORT_ID='${host.shortId}'`);
  });

  it("the backup timer fires on its schedule and leaves a readable dump", async () => {
    const timer = await mustInside(["systemctl", "show", "-p", "Unit", "-p", "TimersCalendar", "cloud-cli-proxy-backup.timer"]);
    expect(timer).toContain("Unit=cloud-cli-proxy-backup.service");
    expect(timer).toContain("OnCalendar=*-*-* *:*:00/5");
    // Nobody starts the service here: the timer does. Its first run may predate the api's
    // migrations (an empty dump); a later run on the schedule dumps the tables.
    const dump = await waitUntil("a dump of the migrated database written by the timer", 120_000, async () => {
      const r = await inside(["sh", "-c", "ls -t /var/backups/cloud-cli-proxy/ 2>/dev/null"], 10_000);
      const newest = r.stdout.split("\n").find((f) => /^cloud-cli-proxy_\d{8}T\d{6}Z\.dump$/.test(f));
      if (!newest) return undefined;
      const list = await inside(["pg_restore", "--list", `/var/backups/cloud-cli-proxy/${newest}`], 30_000);
      return list.code === 0 && list.stdout.includes("TABLE public hosts") ? newest : undefined;
    });
    expect(dump).toMatch(/^cloud-cli-proxy_\d{8}T\d{6}Z\.dump$/);
    const fired = await mustInside(["systemctl", "show", "-p", "LastTriggerUSec", "cloud-cli-proxy-backup.timer"]);
    expect(fired.trim()).not.toMatch(/^LastTriggerUSec=(n\/a|0)?$/);
    const result = await mustInside(["systemctl", "show", "-p", "Result", "cloud-cli-proxy-backup.service"]);
    expect(result.trim()).toBe("Result=success");
  });

  it("install.sh again changes nothing and exits 0", async () => {
    const before = await mustInside(["systemctl", "show", "-p", "MainPID", ...UNITS.slice(0, 2)]);
    const out = await install();
    expect(out).toContain("/opt/cloud-cli-proxy is up to date");
    expect(out).not.toMatch(/installed|wrote|enabled|started|restarted|created/);
    expect(await mustInside(["systemctl", "show", "-p", "MainPID", ...UNITS.slice(0, 2)])).toBe(before);
  });

  it("after deleting the host, uninstall.sh leaves nothing of ours", async () => {
    const del = await api("DELETE", `/v1/admin/hosts/${host.id}?keep_home=false`, admin);
    expect(del.status, del.text).toBe(202);
    expect(await waitForTask(admin, del.body.task_id)).toBe("succeeded");

    const out = await mustInside(["bash", "/src/deploy/scripts/uninstall.sh", "--purge-backups"], 180_000);
    expect(out).toContain("uninstall: done");
    // (These two exit non-zero when nothing matches: only their output counts.)
    const units = await inside(["systemctl", "list-units", "--all", "--plain", "--no-legend", "cloud-cli-proxy-*"]);
    expect(units.stdout.trim()).toBe("");
    const files = await inside(["systemctl", "list-unit-files", "--no-legend", "cloud-cli-proxy-*"]);
    expect(files.stdout.trim()).toBe("");
    const left = await mustInside([
      "sh", "-c",
      "for p in /opt/cloud-cli-proxy /etc/cloud-cli-proxy /var/backups/cloud-cli-proxy; do [ ! -e $p ] || echo $p; done; " +
        "ls /etc/systemd/system | grep cloud-cli-proxy; getent passwd cloudproxy; getent group cloudproxy; getent group docker; true",
    ]);
    expect(left.trim()).toBe("");
    expect(instanceObjects(PREFIX)).toEqual({ containers: [], volumes: [] });

    // A second uninstall on a clean machine is a no-op.
    const again = await mustInside(["bash", "/src/deploy/scripts/uninstall.sh"], 120_000);
    expect(again.trim()).toBe("uninstall: done");
  });
});
