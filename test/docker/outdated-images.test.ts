import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { waitUntil } from "../../shared/test/processes.js";
import { recordObservedImages } from "../../worker/images.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";

/**
 * Outdated images on the real engine (README "Upgrading"): a host created from one HOST_IMAGE is
 * flagged once the worker's HOST_IMAGE names another image, and a bulk rebuild moves it to that
 * image. The "new" image is the real host image with one extra label (a config-only build, no
 * layers), tagged for this file only and removed afterwards.
 */
let h: ApiHarness;
let w: WorkerHarness | undefined;
let admin: string;
let nextTag: string;

const imageId = (ref: string) => docker(["image", "inspect", "-f", "{{.Id}}", ref]).trim();

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h);
  admin = await h.adminToken();
  nextTag = `ccp-test-outdated/host:${h.prefix}`;
  execFileSync("docker", ["build", "-q", "-t", nextTag, "-"], {
    input: `FROM ${w.config.HOST_IMAGE}\nLABEL cloud-cli-proxy.test-upgrade=${h.prefix}\n`,
    env: { ...process.env, DOCKER_BUILDKIT: "0" },
    stdio: ["pipe", "pipe", "pipe"],
  });
}, 120_000);
afterAll(async () => {
  await w?.stop();
  removeInstanceObjects(h.prefix);
  try {
    docker(["image", "rm", "-f", nextTag]);
  } catch {
    /* not built */
  }
  await h?.close();
});

const hostView = async (id: string) => (await h.request("GET", `/v1/admin/hosts/${id}`, { token: admin })).body.host;

describe("a host created before an image change", () => {
  it("is current while HOST_IMAGE is unchanged, flagged after, and current again after the bulk rebuild", async () => {
    const u = await h.createUser();
    const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
    expect(res.status, res.text).toBe(202);
    const hostId = res.body.host.id as string;
    expect((await waitForTask(h, res.body.task_id)).status).toBe("succeeded");
    const [row] = await h.database.sql<{ image_id: string; gateway_image_id: string }[]>`
      select image_id, gateway_image_id from hosts where id = ${hostId}`;
    expect(row).toEqual({ image_id: imageId(w!.config.HOST_IMAGE), gateway_image_id: imageId(w!.config.GATEWAY_IMAGE) });
    expect((await hostView(hostId)).image_outdated).toBe(false);

    // The upgrade: a worker whose HOST_IMAGE names another image publishes it when it starts.
    await w!.stop();
    w = await startTestWorker(h, { HOST_IMAGE: nextTag });
    const next = imageId(nextTag);
    await waitUntil("the new image id published", 30_000, async () => {
      const [e] = await h.database.sql<{ host_image_id: string }[]>`select host_image_id from engine_images where engine_id = 'default'`;
      return e?.host_image_id === next ? true : undefined;
    });
    expect((await hostView(hostId)).image_outdated).toBe(true);

    const bulk = await h.request("POST", "/v1/admin/hosts/rebuild-outdated", { token: admin });
    expect(bulk.status, bulk.text).toBe(202);
    expect(bulk.body.requested.map((r: { host_id: string }) => r.host_id)).toEqual([hostId]);
    const task = await waitForTask(h, bulk.body.requested[0].task_id);
    expect(task.status, JSON.stringify(task)).toBe("succeeded");
    const after = await hostView(hostId);
    expect(after).toMatchObject({ status: "running", image_outdated: false });
    expect(docker(["inspect", "-f", "{{.Image}}", `ccp-host-${hostId}`]).trim()).toBe(next);

    // A host from before the image columns (ids unknown) gets them from its running containers.
    await h.database.sql`update hosts set image_id = null, gateway_image_id = null where id = ${hostId}`;
    expect(await recordObservedImages(w!.deps)).toBe(1);
    const [filled] = await h.database.sql<{ image_id: string; gateway_image_id: string }[]>`
      select image_id, gateway_image_id from hosts where id = ${hostId}`;
    expect(filled).toEqual({ image_id: next, gateway_image_id: imageId(w!.config.GATEWAY_IMAGE) });
  });
});
