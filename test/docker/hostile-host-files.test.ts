import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, type TestUser, createApiHarness } from "../../shared/test/api-harness.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { generateEd25519KeyPair } from "../../shared/ssh/keygen.js";
import { AUTHORIZED_KEYS_MAX_BYTES } from "../../worker/hosts/steps.js";

/**
 * Issue 10 §2: what the worker reads from a host is bounded and never follows the tenant's links
 * or special files. The reproduction: the tenant links /home/workspace/.ssh/authorized_keys to /dev/zero and adds
 * a key through the portal; the worker (which read the file with `cat`) grew from 101 MiB to 3.75
 * GiB RSS in 32 s. Here the worker runs in this process, so its RSS is this process's.
 */
let h: ApiHarness;
let w: WorkerHarness;
let owner: TestUser;
let hostId: string;
const container = () => `ccp-host-${hostId}`;

/** Run a shell line inside the host as the tenant (uid 1000, no root). */
const asTenant = (script: string) => docker(["exec", "-u", "1000:1000", container(), "sh", "-c", script]);

async function addKeyAndSync(): Promise<{ status: string; error_code: string | null }> {
  const before = (await h.database.sql<{ n: number }[]>`
    select count(*)::int as n from tasks where host_id = ${hostId} and kind = 'host.sync-keys'`)[0]!.n;
  const { publicKey } = generateEd25519KeyPair(`hostile-${Date.now()}`);
  const res = await h.request("POST", "/v1/user/ssh-keys", { token: owner.token, body: { public_key: publicKey } });
  expect(res.status, res.text).toBe(201);
  const [task] = await h.database.sql<{ id: string }[]>`
    select id from tasks where host_id = ${hostId} and kind = 'host.sync-keys' order by created_at desc limit 1`;
  expect(task, "a sync-keys task").toBeDefined();
  expect(before).toBeGreaterThanOrEqual(0);
  return waitForTask(h, task!.id, 90_000);
}

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h);
  owner = await h.createUser();
  const admin = await h.adminToken();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: owner.id } });
  expect(res.status, res.text).toBe(202);
  hostId = res.body.host.id;
  expect((await waitForTask(h, res.body.task_id, 180_000)).status).toBe("succeeded");
}, 240_000);

afterAll(async () => {
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

const rssMiB = () => process.memoryUsage().rss / 2 ** 20;

describe("the worker never follows a tenant's links or special files, and reads only so much", () => {
  it("authorized_keys → /dev/zero: the sync replaces the link with a real file; the worker's memory stays flat", async () => {
    asTenant("mkdir -p /home/workspace/.ssh && rm -f /home/workspace/.ssh/authorized_keys && ln -s /dev/zero /home/workspace/.ssh/authorized_keys");
    const before = rssMiB();
    const t = await addKeyAndSync();
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(rssMiB() - before).toBeLessThan(200);
    // The link itself was replaced (rename does not follow it); /dev/zero is untouched.
    expect(asTenant("if [ -L /home/workspace/.ssh/authorized_keys ]; then echo link; elif [ -f /home/workspace/.ssh/authorized_keys ]; then echo file; fi")).toBe("file");
    expect(asTenant("grep -c ssh-ed25519 /home/workspace/.ssh/authorized_keys")).not.toBe("0");
  });

  it("authorized_keys as a FIFO nobody writes to: the sync does not hang, and replaces it", async () => {
    asTenant("rm -f /home/workspace/.ssh/authorized_keys && mkfifo /home/workspace/.ssh/authorized_keys && mkfifo /home/workspace/.ssh/.authorized_keys.ccp-tmp");
    const t = await addKeyAndSync();
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(asTenant("[ -f /home/workspace/.ssh/authorized_keys ] && [ ! -p /home/workspace/.ssh/authorized_keys ] && echo regular")).toBe("regular");
  });

  it("a 2 GiB (sparse) authorized_keys: the task fails cleanly with host_file_rejected after reading at most the limit", async () => {
    asTenant("rm -f /home/workspace/.ssh/authorized_keys && truncate -s 2G /home/workspace/.ssh/authorized_keys");
    const before = rssMiB();
    const t = await addKeyAndSync();
    expect(t.status).toBe("failed");
    expect(t.error_code).toBe("host_file_rejected");
    expect(rssMiB() - before).toBeLessThan(200);
    expect(AUTHORIZED_KEYS_MAX_BYTES).toBe(256 * 1024);
    // The tenant's file was left as it was; once they fix it, keys sync again.
    asTenant("rm -f /home/workspace/.ssh/authorized_keys");
    expect((await addKeyAndSync()).status).toBe("succeeded");
  });

  it("caps what any exec may print: a command that prints forever is abandoned with an error", async () => {
    const before = rssMiB();
    await expect(w.deps.runtime.exec(container(), ["cat", "/dev/zero"], { user: "1000:1000", maxOutputBytes: 8 * 2 ** 20 })).rejects.toThrow(
      /printed more than/,
    );
    await expect(w.deps.runtime.exec(container(), ["sh", "-c", "yes"], { user: "1000:1000" })).rejects.toThrow(/printed more than/);
    expect(rssMiB() - before).toBeLessThan(200);
    // And the runtime still works afterwards.
    expect((await w.deps.runtime.exec(container(), ["echo", "alive"])).stdout.trim()).toBe("alive");
  });

  it("caps what readFile takes from an archive: a tenant's huge file is refused, not buffered", async () => {
    // In the home, not /tmp: /tmp is a tmpfs, which Docker's archive API cannot read at all.
    asTenant("truncate -s 64M /home/workspace/huge");
    const before = rssMiB();
    await expect(w.deps.runtime.readFile(container(), "/home/workspace/huge")).rejects.toThrow(/larger than/);
    expect(rssMiB() - before).toBeLessThan(200);
  });
});
