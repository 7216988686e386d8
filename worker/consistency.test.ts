import { describe, expect, it } from "vitest";
import { compareConsistency, type ConsistencyInput, type EngineListing, type HostFacts, type ListedObject, type PoolFacts } from "./consistency.js";

/** The pure comparison of the consistency check (docs/operations.md#consistency-check), one category at a time. */

const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const host = (n: number, over: Partial<HostFacts> = {}): HostFacts => ({
  id: id(n),
  shortId: `h${String(n).padStart(5, "0")}`,
  engineId: "default",
  status: "running",
  desiredState: "running",
  ...over,
});
const member = (n: number, over: Partial<PoolFacts> = {}): PoolFacts => ({ id: id(n), shortId: `p${String(n).padStart(5, "0")}`, engineId: "default", state: "ready", ...over });
const gw = (n: number, running = true): ListedObject => ({ name: `ccp-gw-${id(n)}`, hostId: id(n), role: "gateway", running });
const hc = (n: number, running = true): ListedObject => ({ name: `ccp-host-${id(n)}`, hostId: id(n), role: "host", running });
const home = (n: number): ListedObject => ({ name: `ccp-home-${id(n)}`, hostId: id(n), role: "home", running: false });
/** The objects of one complete host or pool member. */
const all = (n: number, running = true) => ({ containers: [gw(n, running), hc(n, running)], volumes: [home(n)] });
const engine = (engineId: string, ...sets: { containers: ListedObject[]; volumes: ListedObject[] }[]): EngineListing => ({
  engineId,
  reachable: true,
  containers: sets.flatMap((s) => s.containers),
  volumes: sets.flatMap((s) => s.volumes),
});
const input = (over: Partial<ConsistencyInput>): ConsistencyInput => ({
  engineIds: ["default"],
  hosts: [],
  pool: [],
  retainedVolumes: [],
  listings: [engine("default")],
  ...over,
});
const one = (r: ReturnType<typeof compareConsistency>, engineId = "default") => r.engines.find((e) => e.engine_id === engineId)!;

describe("compareConsistency", () => {
  it("a database and an engine that agree: ok, complete, nothing listed", () => {
    const r = compareConsistency(
      input({
        hosts: [host(1), host(2, { status: "stopped", desiredState: "stopped" }), host(3, { status: "pending" })],
        pool: [member(4)],
        listings: [engine("default", all(1), all(2, false), all(4))],
      }),
      "inst",
    );
    expect(r.ok).toBe(true);
    expect(r.complete).toBe(true);
    expect(r.instance).toBe("inst");
    expect(one(r).hosts).toEqual({ rows: 3, expected: 2, found: 2 });
    expect(one(r).pool_members).toEqual({ rows: 1, expected: 1, found: 1 });
    expect(one(r)).toMatchObject({ containers: 6, volumes: 3, orphans: [], missing: [], misplaced: [], drift: [] });
    expect(r.totals).toEqual({ hosts: 3, pool_members: 1, orphans: 0, missing: 0, misplaced: 0, duplicates: 0, drift: 0, unreachable_engines: 0 });
  });

  it("orphans: labelled containers and volumes of no host row and no pool member", () => {
    const r = compareConsistency(
      input({
        hosts: [host(1)],
        retainedVolumes: [`ccp-home-${id(8)}`],
        listings: [
          engine("default", all(1), all(9), {
            // a kept home (retained), a probe and an egress-test gateway are not orphans
            containers: [{ name: "ccp-probe-x", hostId: null, role: "probe", running: true }, { name: "ccp-gwtest-y", hostId: null, role: "gwtest", running: true }],
            volumes: [home(8)],
          }),
        ],
      }),
    );
    expect(r.ok).toBe(false);
    expect(one(r).orphans).toEqual([
      { object: "container", name: `ccp-gw-${id(9)}`, host_id: id(9), role: "gateway" },
      { object: "container", name: `ccp-host-${id(9)}`, host_id: id(9), role: "host" },
      { object: "volume", name: `ccp-home-${id(9)}`, host_id: id(9), role: "home" },
    ]);
    expect(r.totals.orphans).toBe(3);
  });

  it("missing: a host whose status implies its objects, on an engine that answered", () => {
    const r = compareConsistency(
      input({
        hosts: [
          host(1),
          host(2, { status: "stopped", desiredState: "stopped" }),
          host(3, { status: "pending" }), // may have none
          host(4, { status: "deleting", desiredState: "deleted" }), // may have some
          host(5, { status: "creating" }),
        ],
        listings: [engine("default", { containers: [hc(1)], volumes: [home(1)] }, { containers: [gw(2, false), hc(2, false)], volumes: [] }, { containers: [gw(4, false)], volumes: [] }, { containers: [gw(5, false)], volumes: [] })],
      }),
    );
    expect(r.ok).toBe(false);
    expect(one(r).missing).toEqual([
      { owner: "host", id: id(1), short_id: "h00001", status: "running", objects: ["gateway"] },
      { owner: "host", id: id(2), short_id: "h00002", status: "stopped", objects: ["home"] },
    ]);
    expect(one(r).hosts).toEqual({ rows: 5, expected: 2, found: 1 });
  });

  it("missing objects of a host a task is working on are drift, not an error", () => {
    const r = compareConsistency(input({ hosts: [host(1, { status: "rebuilding", busy: true })], listings: [engine("default", { containers: [gw(1)], volumes: [home(1)] })] }));
    expect(r.ok).toBe(true);
    expect(one(r).missing).toEqual([]);
    expect(one(r).drift).toEqual([{ owner: "host", id: id(1), short_id: "h00001", desired: "running", status: "rebuilding", observed: "host missing while a task of it runs" }]);
  });

  it("unreachable engines are reported, not thrown; their hosts are not missing", () => {
    const r = compareConsistency(
      input({
        engineIds: ["default", "far"],
        hosts: [host(1), host(2, { engineId: "far" })],
        listings: [engine("default", all(1)), { engineId: "far", reachable: false, error: "ECONNREFUSED: connect ECONNREFUSED 10.0.0.5:2376" }],
      }),
    );
    expect(r.ok).toBe(true);
    expect(r.complete).toBe(false);
    expect(r.unreachable_engines).toEqual([{ engine_id: "far", error: "ECONNREFUSED: connect ECONNREFUSED 10.0.0.5:2376" }]);
    expect(one(r, "far")).toMatchObject({ reachable: false, hosts: { rows: 1, expected: 1, found: 0 }, missing: [] });
    expect(r.totals.unreachable_engines).toBe(1);
  });

  it("misplaced: objects on another engine than the row names (and missing where they belong)", () => {
    const r = compareConsistency(
      input({
        engineIds: ["default", "b"],
        hosts: [host(1, { engineId: "b" })],
        pool: [member(2, { engineId: "default" })],
        listings: [engine("default", all(1), all(2)), engine("b", { containers: [], volumes: [home(1)] })],
      }),
    );
    expect(r.ok).toBe(false);
    expect(one(r).misplaced).toEqual([
      { owner: "host", id: id(1), short_id: "h00001", expected_engine: "b", objects: [`ccp-gw-${id(1)}`, `ccp-home-${id(1)}`, `ccp-host-${id(1)}`].sort() },
    ]);
    expect(one(r).orphans).toEqual([]);
    expect(one(r, "b").missing).toEqual([{ owner: "host", id: id(1), short_id: "h00001", status: "running", objects: ["gateway", "host"] }]);
    expect(r.totals.misplaced).toBe(1);
  });

  it("duplicates: two gateway containers for one host, on one engine or across engines", () => {
    const r = compareConsistency(
      input({
        engineIds: ["default", "b"],
        hosts: [host(1), host(2)],
        listings: [
          engine("default", all(1), all(2), { containers: [{ ...gw(1), name: "ccp-gw-copy" }], volumes: [] }),
          engine("b", { containers: [hc(2)], volumes: [] }),
        ],
      }),
    );
    expect(r.ok).toBe(false);
    expect(r.duplicates).toEqual([
      { id: id(1), role: "gateway", containers: [{ engine_id: "default", name: "ccp-gw-copy" }, { engine_id: "default", name: `ccp-gw-${id(1)}` }].sort((a, b) => a.name.localeCompare(b.name)) },
      { id: id(2), role: "host", containers: [{ engine_id: "b", name: `ccp-host-${id(2)}` }, { engine_id: "default", name: `ccp-host-${id(2)}` }] },
    ]);
    expect(r.totals.duplicates).toBe(2);
  });

  it("drift: running state against the desired state is listed but keeps ok", () => {
    const r = compareConsistency(
      input({
        hosts: [
          host(1), // desired running, gateway stopped
          host(2, { status: "stopped", desiredState: "stopped" }), // desired stopped, both running
          host(3, { status: "stopping", desiredState: "stopped" }), // on its way: no drift
          host(4, { status: "failed" }), // failed, desired running
          host(5, { status: "unreachable" }), // engine answers
        ],
        pool: [member(6), member(7, { state: "warming" })],
        listings: [engine("default", { containers: [gw(1, false), hc(1)], volumes: [home(1)] }, all(2, true), all(3, true), all(5), { containers: [gw(6), hc(6, false)], volumes: [home(6)] }, { containers: [gw(7, false)], volumes: [] })],
      }),
    );
    expect(r.ok).toBe(true);
    expect(one(r).drift.map((d) => [d.owner, d.id, d.observed])).toEqual([
      ["host", id(1), "gateway container stopped"],
      ["host", id(2), "gateway, host container running"],
      ["host", id(4), "failed"],
      ["host", id(5), "marked unreachable but its engine answers"],
      ["pool", id(6), "host container stopped"],
    ]);
    expect(r.totals.drift).toBe(5);
  });

  it("pool members: a ready member is held to its objects; a claimed one is its host's", () => {
    const r = compareConsistency(
      input({
        hosts: [host(2)],
        pool: [member(1), member(2, { state: "claimed" }), member(3, { state: "claimed" }), member(4, { state: "draining" })],
        listings: [engine("default", { containers: [gw(1)], volumes: [] }, all(2), { containers: [gw(4)], volumes: [] })],
      }),
    );
    expect(r.ok).toBe(false);
    expect(one(r).missing).toEqual([{ owner: "pool", id: id(1), short_id: "p00001", status: "ready", objects: ["host", "home"] }]);
    expect(one(r).pool_members).toEqual({ rows: 3, expected: 1, found: 0 });
    expect(one(r).hosts).toEqual({ rows: 1, expected: 1, found: 1 });
  });
});
