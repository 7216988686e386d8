import { randomBytes } from "node:crypto";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedis } from "../../shared/redis.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { bareWorkerDeps, docker, ensureTestNetworks, TEST_MGMT_NETWORK } from "../../shared/test/worker-harness.js";
import { ensureNetworks } from "../../worker/hosts/steps.js";

/**
 * Workers that start together each ensure the networks (docs/architecture.md#host-flows). Docker
 * does not enforce unique network names: three compose workers racing left two underlay networks
 * of one name, and every host create after that failed with "network … is ambiguous". Creation is
 * serialised across workers, and a duplicate left behind is repaired.
 */

let h: ApiHarness;
let redis: ReturnType<typeof createRedis>;
const engine = new Docker({ socketPath: "/var/run/docker.sock" });
const names: string[] = [];

const networksNamed = (name: string) =>
  docker(["network", "ls", "-q", "--no-trunc", "--filter", `name=^${name}$`]).split("\n").filter(Boolean);

const fresh = (tag: string) => {
  const n = `ccp-netrace-${tag}-${randomBytes(3).toString("hex")}`;
  names.push(n);
  return n;
};

beforeAll(async () => {
  ensureTestNetworks();
  h = await createApiHarness();
  redis = createRedis(h.env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test-netrace" });
});

afterAll(async () => {
  for (const n of names) for (const id of networksNamed(n)) docker(["network", "rm", id]);
  redis?.disconnect();
  await h?.close();
});

describe("networks under concurrent workers", () => {
  it("workers ensuring the networks at once leave exactly one network of each name", async () => {
    // Several rounds of eight workers: one round rarely loses the race, a few rounds without the
    // lock reliably left duplicates here.
    for (let round = 0; round < 4; round++) {
      const underlay = fresh(`underlay${round}`);
      // Separate runtimes (separate Docker clients), one database.
      const workers = Array.from({ length: 8 }, () =>
        bareWorkerDeps(h, redis, { MGMT_NETWORK: TEST_MGMT_NETWORK, EGRESS_UNDERLAY_NETWORK: underlay }),
      );
      const results = await Promise.all(workers.map((d) => ensureNetworks(d)));
      expect(networksNamed(underlay)).toHaveLength(1);
      expect(new Set(results.map((r) => r.underlay.subnet)).size).toBe(1);
    }
  });

  it("a duplicate network name left behind (no container on it) is repaired, the oldest one kept", async () => {
    const underlay = fresh("dup");
    // Two networks of one name, as the race left them (the daemon only refuses with CheckDuplicate).
    const first = await engine.createNetwork({ Name: underlay, Driver: "bridge", CheckDuplicate: false, Labels: { "cloud-cli-proxy.test": "true" } });
    await engine.createNetwork({ Name: underlay, Driver: "bridge", CheckDuplicate: false, Labels: { "cloud-cli-proxy.test": "true" } });
    expect(networksNamed(underlay)).toHaveLength(2);

    const deps = bareWorkerDeps(h, redis, { MGMT_NETWORK: TEST_MGMT_NETWORK, EGRESS_UNDERLAY_NETWORK: underlay });
    const { underlay: info } = await ensureNetworks(deps);
    expect(networksNamed(underlay)).toEqual([first.id]);
    const subnet = docker(["network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", first.id]);
    expect(info.subnet).toBe(subnet);
  });
});
