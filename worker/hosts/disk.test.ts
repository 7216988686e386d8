import { describe, expect, it } from "vitest";
import { parseWorkerConfig } from "../../shared/config/worker.js";
import { diskAgentArgv, diskDirOf } from "./disk.js";

const ID = "0b8a3c9e-1f2d-4e5a-9b6c-7d8e9f0a1b2c";
const DIR = "/var/lib/cloud-cli-proxy/disks";

describe("disk agent arguments (worker/hosts/disk.ts)", () => {
  it("passes the id, directory and size as positional parameters of a fixed script", () => {
    const argv = diskAgentArgv(4242, "ensure", DIR, ID, 256);
    expect(argv.slice(0, 2)).toEqual(["sh", "-c"]);
    expect(argv.slice(4)).toEqual(["4242", "ensure", DIR, ID, "256", "1000"]);
    // The scripts never contain a value: they are the same whatever the host.
    const other = diskAgentArgv(77, "remove", "/srv/d", "ffffffff-ffff-ffff-ffff-ffffffffffff");
    expect(argv.slice(2, 4)).toEqual(other.slice(2, 4));
    expect(argv.slice(2, 4).join("")).not.toContain(ID);
  });

  it.each([
    ["not a uuid", "x"],
    ["shell", "$(reboot)"],
    ["path", "../../etc"],
    ["uppercase", ID.toUpperCase()],
    ["trailing newline", `${ID}\n`],
    ["uuid with suffix", `${ID}/home`],
  ])("refuses a host id: %s", (_what, id) => {
    expect(() => diskAgentArgv(4242, "ensure", DIR, id, 256)).toThrow(/host id/);
    expect(() => diskAgentArgv(4242, "remove", DIR, id)).toThrow(/host id/);
  });

  it.each([["relative", "var/lib/x"], ["dot-dot", "/var/lib/../../etc"], ["dot", "/var/./lib"], ["space", "/var/lib/a b"], ["quote", "/var/lib/a'b"], ["root only", "/"], ["trailing slash", "/var/lib/"]])(
    "refuses a directory: %s",
    (_what, dir) => {
      expect(() => diskAgentArgv(4242, "ensure", dir, ID, 256)).toThrow(/directory/);
    },
  );

  it.each([255, 1048577, 256.5, NaN, -1, Number.MAX_SAFE_INTEGER + 2])("refuses a size of %s MiB", (mb) => {
    expect(() => diskAgentArgv(4242, "ensure", DIR, ID, mb)).toThrow(/size/);
  });

  it.each([0, 1, -5, 1.5, NaN])("refuses an agent pid of %s", (pid) => {
    expect(() => diskAgentArgv(pid, "remove", DIR, ID)).toThrow(/pid/);
  });

  it("refuses an unknown operation", () => {
    expect(() => diskAgentArgv(4242, "format" as never, DIR, ID, 256)).toThrow(/operation/);
  });

  it("only ensure takes a size; other operations pass 0", () => {
    expect(diskAgentArgv(4242, "remove", DIR, ID, 999)[8]).toBe("0");
    expect(diskAgentArgv(4242, "mount", DIR, ID)[8]).toBe("0");
  });

  it("recognises a home volume on its own disk, and nothing else", () => {
    expect(diskDirOf({ options: { type: "none", o: "bind", device: `${DIR}/${ID}/home` } }, ID)).toBe(DIR);
    expect(diskDirOf({ options: {} }, ID)).toBeNull();
    expect(diskDirOf({ options: { type: "none", o: "bind", device: `${DIR}/other/home` } }, ID)).toBeNull();
    expect(diskDirOf({ options: { type: "none", o: "bind", device: `relative/${ID}/home` } }, ID)).toBeNull();
    expect(diskDirOf({ options: { type: "nfs", o: "bind", device: `${DIR}/${ID}/home` } }, ID)).toBeNull();
  });
});

describe("disk and log settings", () => {
  const env = {
    DATABASE_URL: "postgres://u:p@127.0.0.1:5432/db",
    SECRETS_KEY: `v1:${Buffer.alloc(32, 1).toString("base64")}`,
    EGRESS_DEFAULT_DNS_SERVER: "203.0.113.53",
    EGRESS_CHECK_URL: "http://203.0.113.10/generate_204",
    EGRESS_ECHO_URL: "http://203.0.113.10/ip",
    EGRESS_DNS_CANARY_DOMAIN: "egress.test",
    EGRESS_DNS_CANARY_API: "http://203.0.113.53:8053",
    EGRESS_DNS_CANARY_API_SECRET: "s".repeat(40),
    EGRESS_CHECK_FORBIDDEN_RESOLVER: "203.0.113.54",
  };

  it("defaults: 10 GiB homes under /var/lib/cloud-cli-proxy/disks, 512 MiB tmpfs, logs 10m × 3", () => {
    const c = parseWorkerConfig(env);
    expect([c.HOST_DISK_LIMIT_MB, c.HOST_DISK_DIR, c.HOST_TMPFS_MB, c.CONTAINER_LOG_MAX_SIZE, c.CONTAINER_LOG_MAX_FILES]).toEqual([
      10240, DIR, 512, "10m", 3,
    ]);
    expect(parseWorkerConfig({ ...env, HOST_DISK_LIMIT_MB: "0" }).HOST_DISK_LIMIT_MB).toBe(0);
  });

  it.each([
    ["HOST_DISK_LIMIT_MB", "100"],
    ["HOST_DISK_LIMIT_MB", "2000000"],
    ["HOST_DISK_DIR", "disks"],
    ["HOST_DISK_DIR", "/var/../etc"],
    ["HOST_DISK_DIR", "/var/lib/a b"],
    ["CONTAINER_LOG_MAX_SIZE", "10"],
    ["CONTAINER_LOG_MAX_SIZE", "10mb"],
    ["CONTAINER_LOG_MAX_FILES", "0"],
  ])("refuses %s=%s, naming it", (name, value) => {
    expect(() => parseWorkerConfig({ ...env, [name]: value })).toThrow(name);
  });
});
