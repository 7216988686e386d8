import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { insertHostRow, insertTaskRow, insertUserRow } from "../../shared/test/rows.js";

/**
 * Outdated images (README "Upgrading"): a host whose recorded image ids differ from its engine's
 * current ones is `image_outdated` in the admin and portal views, and
 * POST /v1/admin/hosts/rebuild-outdated requests one preserve-home rebuild per outdated running or
 * stopped host through the single-rebuild path (cap, dedupe, events). No worker runs: the engine's
 * current ids and the hosts' recorded ids are rows, as the worker would have written them.
 */
let h: ApiHarness;
let admin: string;
const sql = () => h.database.sql;

const CURRENT = { host: "sha256:hostnew0001", gateway: "sha256:gwcur0001" };
const OLD = "sha256:hostold0001";

beforeAll(async () => {
  h = await createApiHarness({ HOST_MAX_PENDING_TASKS: "3" });
  admin = await h.adminToken();
});
afterAll(async () => {
  await h?.close();
});
beforeEach(async () => {
  // Every case starts from no hosts (one host per user; rows of earlier cases would be outdated too).
  await sql()`delete from tasks`;
  await sql()`delete from hosts`;
  await sql()`delete from engine_images`;
});

async function publish(engine = "default", ids = CURRENT) {
  await sql()`insert into engine_images (engine_id, host_image, host_image_id, gateway_image, gateway_image_id)
    values (${engine}, 'cloud-cli-proxy/host:latest', ${ids.host}, 'cloud-cli-proxy/gateway:latest', ${ids.gateway})
    on conflict (engine_id) do update set host_image_id = excluded.host_image_id, gateway_image_id = excluded.gateway_image_id`;
}

/** A host row with the image ids its containers were created from (null: unknown). */
async function host(opts: {
  image?: string | null;
  gateway?: string | null;
  status?: "running" | "stopped" | "failed" | "deleting" | "rebuilding";
  desired?: "running" | "stopped" | "deleted";
  engine?: string;
  userId?: string;
}) {
  const row = await insertHostRow(sql(), { status: opts.status ?? "running", desiredState: opts.desired ?? "running", userId: opts.userId });
  await sql()`update hosts set image_id = ${opts.image === undefined ? CURRENT.host : opts.image},
    gateway_image_id = ${opts.gateway === undefined ? CURRENT.gateway : opts.gateway},
    engine_id = ${opts.engine ?? "default"} where id = ${row.id}`;
  return row;
}

async function flags(): Promise<Map<string, boolean>> {
  const res = await h.request("GET", "/v1/admin/hosts?limit=200", { token: admin });
  expect(res.status, res.text).toBe(200);
  return new Map((res.body.hosts as { id: string; image_outdated: boolean }[]).map((x) => [x.id, x.image_outdated]));
}

const tasksOf = (hostId: string) =>
  sql()<{ id: string; kind: string; status: string; payload: Record<string, unknown>; requested_by: string }[]>`
    select id, kind, status, payload, requested_by from tasks where host_id = ${hostId} order by created_at, id`;

describe("image_outdated on host views", () => {
  it("flags only a known difference, per engine, in the host or the gateway image", async () => {
    await publish();
    await publish("engine-b", { host: OLD, gateway: CURRENT.gateway });
    const current = await host({});
    const oldHost = await host({ image: OLD });
    const oldGateway = await host({ gateway: "sha256:gwold" });
    const unknown = await host({ image: null, gateway: null });
    const otherEngine = await host({ image: OLD, engine: "engine-b" }); // current there
    const unpublished = await host({ image: OLD, engine: "engine-c" }); // no worker has published
    const deleting = await host({ image: OLD, status: "deleting", desired: "deleted" });
    const f = await flags();
    const cases = { current, oldHost, oldGateway, unknown, otherEngine, unpublished, deleting };
    expect(Object.fromEntries(Object.entries(cases).map(([name, x]) => [name, f.get(x.id)]))).toEqual({
      current: false,
      oldHost: true,
      oldGateway: true,
      unknown: false,
      otherEngine: false,
      unpublished: false,
      deleting: false,
    });
  });

  it("appears in the admin host detail and the owner's portal views; the portal still hides the image", async () => {
    await publish();
    const user = await h.createUser();
    const row = await host({ image: OLD, userId: user.id });
    const detail = await h.request("GET", `/v1/admin/hosts/${row.id}`, { token: admin });
    expect(detail.status, detail.text).toBe(200);
    expect(detail.body.host.image_outdated).toBe(true);
    const mine = await h.request("GET", `/v1/user/hosts/${row.id}`, { token: user.token });
    expect(mine.status, mine.text).toBe(200);
    expect(mine.body.host.image_outdated).toBe(true);
    expect(mine.body.host).not.toHaveProperty("image");
    const list = await h.request("GET", "/v1/user/hosts", { token: user.token });
    expect(list.body.hosts[0].image_outdated, list.text).toBe(true);

    await sql()`update hosts set image_id = ${CURRENT.host} where id = ${row.id}`;
    const after = await h.request("GET", `/v1/user/hosts/${row.id}`, { token: user.token });
    expect(after.body.host.image_outdated).toBe(false);
  });
});

describe("POST /v1/admin/hosts/rebuild-outdated", () => {
  it("dry run lists the outdated running and stopped hosts and creates nothing", async () => {
    await publish();
    const running = await host({ image: OLD });
    const stopped = await host({ image: OLD, status: "stopped", desired: "stopped" });
    await host({ image: OLD, status: "failed" });
    await host({});
    const res = await h.request("POST", "/v1/admin/hosts/rebuild-outdated", { token: admin, body: { dry_run: true } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.dry_run).toBe(true);
    expect((res.body.requested as { host_id: string }[]).map((r) => r.host_id).sort()).toEqual([running.id, stopped.id].sort());
    expect(res.body.requested.every((r: { task_id: unknown }) => r.task_id === null)).toBe(true);
    const [n] = await sql()<{ n: number }[]>`select count(*)::int as n from tasks`;
    expect(n!.n).toBe(0);
  });

  it("one preserve-home rebuild per outdated host; a stopped host is stopped again; asking twice queues nothing new", async () => {
    await publish();
    const running = await host({ image: OLD });
    const stopped = await host({ image: OLD, status: "stopped", desired: "stopped" });
    const fresh = await host({});
    const res = await h.request("POST", "/v1/admin/hosts/rebuild-outdated", { token: admin });
    expect(res.status, res.text).toBe(202);
    expect(res.body.skipped).toEqual([]);
    const byHost = new Map((res.body.requested as { host_id: string; task_id: string; stop_task_id: string | null }[]).map((r) => [r.host_id, r]));
    expect([...byHost.keys()].sort()).toEqual([running.id, stopped.id].sort());

    const adminId = (await sql()<{ id: string }[]>`select id from users where role = 'admin'`)[0]!.id;
    const runTasks = await tasksOf(running.id);
    expect(runTasks.map((t) => [t.id, t.kind, t.status, t.payload, t.requested_by])).toEqual([
      [byHost.get(running.id)!.task_id, "host.rebuild", "pending", { mode: "preserve-home" }, adminId],
    ]);
    expect(byHost.get(running.id)!.stop_task_id).toBeNull();
    const stopTasks = await tasksOf(stopped.id);
    expect(stopTasks.map((t) => [t.id, t.kind])).toEqual([
      [byHost.get(stopped.id)!.task_id, "host.rebuild"],
      [byHost.get(stopped.id)!.stop_task_id, "host.stop"],
    ]);
    const [desired] = await sql()<{ desired_state: string }[]>`select desired_state from hosts where id = ${stopped.id}`;
    expect(desired!.desired_state).toBe("stopped");
    expect(await tasksOf(fresh.id)).toEqual([]);
    // The jobs went to the queue (job id = task id).
    const job = await h.queues.get("host-ops").getJob(byHost.get(running.id)!.task_id);
    expect(job?.name).toBe("host.rebuild");

    const [ev] = await sql()<{ n: number }[]>`select count(*)::int as n from events where type = 'host.rebuild_outdated.requested' and actor_id = ${adminId}`;
    expect(ev!.n).toBe(1);

    const again = await h.request("POST", "/v1/admin/hosts/rebuild-outdated", { token: admin });
    expect(again.status, again.text).toBe(202);
    expect(again.body.requested).toEqual([]);
    expect((await tasksOf(running.id)).length).toBe(1);
    expect((await tasksOf(stopped.id)).length).toBe(2);
  });

  it("hosts the per-host rules refuse are skipped with their code; the others go ahead", async () => {
    await publish();
    const ok = await host({ image: OLD });
    const full = await host({ image: OLD });
    // HOST_MAX_PENDING_TASKS=3: three pending tasks of other kinds fill its queue.
    for (const kind of ["host.sync-keys", "host.start", "host.stop"]) await insertTaskRow(sql(), { kind, hostId: full.id });
    const disabledOwner = await insertUserRow(sql(), { status: "disabled" });
    const inactive = await host({ image: OLD, userId: disabledOwner });
    const res = await h.request("POST", "/v1/admin/hosts/rebuild-outdated", { token: admin });
    expect(res.status, res.text).toBe(202);
    expect((res.body.requested as { host_id: string }[]).map((r) => r.host_id)).toEqual([ok.id]);
    const skipped = new Map((res.body.skipped as { host_id: string; code: string }[]).map((s) => [s.host_id, s.code]));
    expect(Object.fromEntries(skipped)).toEqual({ [full.id]: "too_many_tasks", [inactive.id]: "user_inactive" });
    expect((await tasksOf(full.id)).filter((t) => t.kind === "host.rebuild")).toEqual([]);
  });

  it("with nothing published no host is outdated", async () => {
    await host({ image: OLD });
    const res = await h.request("POST", "/v1/admin/hosts/rebuild-outdated", { token: admin });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toEqual({ dry_run: false, requested: [], skipped: [] });
  });

  it("rejects unknown fields; a user token is forbidden", async () => {
    const bad = await h.request("POST", "/v1/admin/hosts/rebuild-outdated", { token: admin, body: { dry_run: "yes" } });
    expect(bad.status, bad.text).toBe(400);
    const user = await h.createUser();
    const res = await h.request("POST", "/v1/admin/hosts/rebuild-outdated", { token: user.token });
    expect(res.status, res.text).toBe(403);
  });
});
