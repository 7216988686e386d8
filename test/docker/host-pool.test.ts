import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { waitUntil } from "../../shared/test/processes.js";
import { type SshdHarness, ssh, startTestSshd } from "../../shared/test/sshd-harness.js";
import {
  docker,
  instanceObjects,
  removeInstanceObjects,
  startTestWorker,
  waitForTask,
  type WorkerHarness,
} from "../../shared/test/worker-harness.js";
import { gatewayName, hostContainerName } from "../../worker/hosts/names.js";

/**
 * The warm pool on the real engine (docs/architecture.md#warm-pool), HOST_POOL_SIZE=1: the pool
 * fills; a create claims the member (the host's container is the one made before the POST); the
 * user reaches it over SSH through the proxy with the real OpenSSH client, on a home no earlier
 * tenant wrote to; the pool refills; an image change drains and refills it; deleting everything
 * leaves no container or volume of this run. test/integration/host-pool-memory.test.ts covers
 * the concurrency and reconciler cases.
 */
let h: ApiHarness;
let w: WorkerHarness;
let s: SshdHarness;
let admin: string;
/** A second tag of the host image with another image id: the "image change" (removed at the end). */
let newImage: string | null = null;
const config = () => w.config as { HOST_POOL_SIZE: number; HOST_IMAGE: string };

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h, { HOST_POOL_SIZE: "1" });
  s = await startTestSshd(h);
  admin = await h.adminToken();
}, 120_000);
afterAll(async () => {
  if (process.env.POOL_DEBUG) process.stderr.write(w.logs.filter((l) => /pool|"level":(40|50)/.test(l)).join(""));
  await s?.stop();
  await w?.stop();
  removeInstanceObjects(h.prefix);
  if (newImage) {
    try {
      docker(["rmi", newImage]);
    } catch {
      // still used by a container another cleanup removes; the tag is unique to this run
    }
  }
  await h?.close();
});

type Member = { id: string; state: string; short_id: string; image_id: string | null };
const members = () => h.database.sql<Member[]>`select id, state, short_id, image_id from host_pool order by created_at`;
const readyMember = (what: string, ok: (m: Member) => boolean = () => true) =>
  waitUntil(what, 180_000, async () => {
    w.pool.kick();
    const m = await members();
    return m.length === 1 && m[0]!.state === "ready" && ok(m[0]!) ? m[0]! : undefined;
  });
const containerId = (name: string) => docker(["inspect", "-f", "{{.Id}}", name]);

async function claim(): Promise<{ hostId: string; shortId: string; password: string; memberContainer: string }> {
  const member = await readyMember("a ready pool member");
  const memberContainer = containerId(hostContainerName(member.id));
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  const hostId = res.body.host.id as string;
  expect(hostId).toBe(member.id);
  expect(res.body.host.short_id).toBe(member.short_id);
  const t = await waitForTask(h, res.body.task_id);
  expect(t.status, JSON.stringify(t)).toBe("succeeded");
  // The fast path: nothing was created or started.
  const steps = Object.fromEntries(t.steps.map((x: { name: string; status: string }) => [x.name, x.status]));
  expect(steps).toMatchObject({ prepare_volume: "skipped", start_host: "skipped", wait_ssh: "succeeded", sync_keys: "succeeded" });
  const rot = await h.request("POST", `/v1/admin/hosts/${hostId}/rotate-ssh-password`, { token: admin });
  expect(rot.status, rot.text).toBe(200);
  return { hostId, shortId: res.body.host.short_id, password: rot.body.ssh_password, memberContainer };
}

async function deleteHost(hostId: string) {
  const res = await h.request("DELETE", `/v1/admin/hosts/${hostId}`, { token: admin });
  expect(res.status, res.text).toBe(202);
  expect((await waitForTask(h, res.body.task_id)).status).toBe("succeeded");
}

describe("warm pool on the real engine", () => {
  let first: Awaited<ReturnType<typeof claim>>;

  it("fills, and a create claims the member made before the POST: the user gets in over SSH", async () => {
    first = await claim();
    expect(containerId(hostContainerName(first.hostId))).toBe(first.memberContainer);
    const r = await ssh(s, { login: first.shortId, password: first.password, args: ["id -un; hostname; echo tenant-one > ~/marker; ls -A ~"] });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const [user, hostname] = r.stdout.trim().split("\n");
    expect(user).toBe("workspace");
    // The gateway (whose UTS namespace the host shares) was named by the member's short id.
    expect(hostname).toBe(first.shortId);
  }, 300_000);

  it("refills with a fresh member, whose home no earlier tenant wrote to", async () => {
    const next = await readyMember("the replacement member", (m) => m.id !== first.hostId);
    expect(next.id).not.toBe(first.hostId);
    await deleteHost(first.hostId);
    const second = await claim();
    const r = await ssh(s, { login: second.shortId, password: second.password, args: ["test ! -e ~/marker && echo fresh; df -P ~ | tail -1"] });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("fresh");
    first = second;
  }, 300_000);

  it("an image change drains the member and refills from the new image", async () => {
    const before = await readyMember("a member of the current image", (m) => m.id !== first.hostId);
    // Same content, another image id: a committed copy of the host image under a tag of this run.
    newImage = `ccp-test-pool-host:${h.prefix}`;
    const tmp = `ccp-test-pool-commit-${h.prefix}`;
    docker(["create", "--name", tmp, config().HOST_IMAGE]);
    try {
      docker(["commit", tmp, newImage]);
    } finally {
      docker(["rm", "-f", tmp]);
    }
    const newId = docker(["image", "inspect", "-f", "{{.Id}}", newImage]);
    config().HOST_IMAGE = newImage;
    const after = await readyMember("a member of the new image", (m) => m.image_id === newId);
    expect(after.id).not.toBe(before.id);
    const gone = instanceObjects(h.prefix);
    expect(gone.containers).not.toContain(gatewayName(before.id));
    expect(gone.containers).not.toContain(hostContainerName(before.id));
    expect(gone.volumes).not.toContain(`ccp-home-${before.id}`);
  }, 300_000);

  it("deleting every host and emptying the pool leaves no container or volume", async () => {
    await deleteHost(first.hostId);
    config().HOST_POOL_SIZE = 0;
    await waitUntil("an empty pool", 120_000, async () => {
      w.pool.kick();
      return (await members()).length === 0 ? true : undefined;
    });
    expect(instanceObjects(h.prefix)).toEqual({ containers: [], volumes: [] });
  }, 300_000);
});
