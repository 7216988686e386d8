import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSecretBox } from "../../shared/crypto/secrets.js";
import { projectRoot } from "../../shared/paths.js";
import { type ApiHarness, createApiHarness, TEST_SECRETS_KEY } from "../../shared/test/api-harness.js";
import { buildDist } from "../../shared/test/processes.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { checkConsistency, type ConsistencyReport } from "../../worker/consistency.js";
import { gatewayName, LABEL_HOST_ID, LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE } from "../../worker/hosts/names.js";

/**
 * The consistency check (docs/operations.md#consistency-check) against the real main engine: a
 * fresh host is consistent; with the worker stopped (so nothing repairs), a removed gateway is
 * reported missing and a labelled container of no host an orphan; `admin consistency --json`
 * prints the same report and exits 1. Only this file's instance label is looked at.
 */
let h: ApiHarness;
let w: WorkerHarness | undefined;
let hostId: string;
let hostImage: string;

const check = (): Promise<ConsistencyReport> =>
  checkConsistency({ db: h.database.db, secrets: createSecretBox(TEST_SECRETS_KEY, ""), instance: h.prefix, engines: ["default"] });

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["dist/main.js", "admin", ...args], {
      cwd: projectRoot,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        DATABASE_URL: h.env.DATABASE_URL!,
        REDIS_URL: h.env.REDIS_URL ?? "redis://127.0.0.1:6379",
        REDIS_PREFIX: h.prefix,
        SECRETS_KEY: TEST_SECRETS_KEY,
        SECRETS_KEY_PREVIOUS: "",
        ADMIN_USERNAME: "admin",
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += String(d)));
    child.stderr.on("data", (d) => (stderr += String(d)));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  buildDist();
  h = await createApiHarness();
  w = await startTestWorker(h);
  hostImage = w.config.HOST_IMAGE;
  const admin = await h.adminToken();
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  hostId = res.body.host.id;
  expect((await waitForTask(h, res.body.task_id)).status).toBe("succeeded");
}, 240_000);
afterAll(async () => {
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

describe("consistency check on the main engine", () => {
  it("a freshly created host: consistent", async () => {
    const r = await check();
    expect(r.ok, JSON.stringify(r, null, 2)).toBe(true);
    expect(r.complete).toBe(true);
    const [e] = r.engines;
    expect(r.engines).toHaveLength(1);
    expect(e).toMatchObject({ engine_id: "default", reachable: true, hosts: { rows: 1, expected: 1, found: 1 }, orphans: [], missing: [], misplaced: [], drift: [] });
    expect(e!.containers).toBe(2);
    expect(e!.volumes).toBe(1);
  });

  it("tampered with (worker stopped): a removed gateway is missing, a stray labelled container an orphan; the CLI agrees", async () => {
    await w!.stop();
    w = undefined;
    docker(["rm", "-f", gatewayName(hostId)]);
    const strayId = randomUUID();
    const strayName = `ccp-stray-${h.prefix}`;
    docker([
      "create", "--name", strayName, "--network", "none",
      "--label", `${LABEL_MANAGED}=true`,
      "--label", `${LABEL_INSTANCE}=${h.prefix}`,
      "--label", `${LABEL_ROLE}=host`,
      "--label", `${LABEL_HOST_ID}=${strayId}`,
      "--entrypoint", "true", hostImage,
    ]);

    const r = await check();
    expect(r.ok).toBe(false);
    const e = r.engines[0]!;
    expect(e.missing).toEqual([{ owner: "host", id: hostId, short_id: expect.any(String), status: "running", objects: ["gateway"] }]);
    expect(e.orphans).toEqual([{ object: "container", name: strayName, host_id: strayId, role: "host" }]);
    expect(e.hosts).toEqual({ rows: 1, expected: 1, found: 0 });
    expect(r.totals).toMatchObject({ orphans: 1, missing: 1, misplaced: 0, duplicates: 0, unreachable_engines: 0 });
    // The host container outlived its gateway: whatever its state, nothing else is reported.
    expect(e.misplaced).toEqual([]);
    expect(r.duplicates).toEqual([]);
    expect(e.containers).toBe(2);

    const json = await cli(["consistency", "--json", "--engine", "default"]);
    expect(json.code, json.stderr).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual(await check());

    const text = await cli(["consistency"]);
    expect(text.code, text.stderr).toBe(1);
    expect(text.stdout).toContain("NOT consistent: 1 orphan(s), 1 missing");
    expect(text.stdout).toContain(strayName);
    expect(text.stdout).toMatch(new RegExp(`missing\\s+default\\s+host \\w+ \\(${hostId}\\), running: no gateway`));

    const usage = await cli(["consistency", "--engine", "no-such-engine"]);
    expect(usage.code, usage.stderr).toBe(2);
    expect(usage.stderr).toContain("no such engine: no-such-engine");
  });
});
