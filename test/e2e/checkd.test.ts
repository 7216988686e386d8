import { Resolver } from "node:dns/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildDist, freePort, spawnLogged, type Spawned, waitUntil } from "../../shared/test/processes.js";

/**
 * `node dist/main.js checkd` as an operator runs it (README "Deploying the egress check service
 * (checkd)"): its own process, configured from the environment alone, on loopback ports here.
 */
const SECRET = "e2e-".repeat(10);
let httpPort: number;
let dnsPort: number;
let proc: Spawned;

const env = () => ({
  PATH: process.env.PATH,
  CHECKD_HTTP_LISTEN_ADDR: `127.0.0.1:${httpPort}`,
  CHECKD_DNS_LISTEN_ADDR: `127.0.0.1:${dnsPort}`,
  CHECKD_ZONE: "canary.example.test",
  CHECKD_ANSWER_IPV4: "198.51.100.7",
  CHECKD_API_SECRET: SECRET,
  CHECKD_LOG_REQUESTS: "true",
});

beforeAll(async () => {
  buildDist();
  httpPort = await freePort();
  dnsPort = await freePort();
  proc = spawnLogged(process.execPath, ["dist/main.js", "checkd"], env());
  await waitUntil("checkd to listen", 30_000, async () => {
    const ok = await fetch(`http://127.0.0.1:${httpPort}/healthz`).then((r) => r.ok, () => false);
    return ok || undefined;
  });
});
afterAll(() => {
  if (proc && proc.child.exitCode === null) proc.child.kill("SIGKILL");
});

describe("node dist/main.js checkd", () => {
  it("serves the echo, the zone and the authenticated query API, and logs each request's source", async () => {
    expect((await (await fetch(`http://127.0.0.1:${httpPort}/ip`)).text()).trim()).toBe("127.0.0.1");
    expect((await fetch(`http://127.0.0.1:${httpPort}/generate_204`)).status).toBe(204);
    const resolver = new Resolver({ timeout: 1000, tries: 2 });
    resolver.setServers([`127.0.0.1:${dnsPort}`]);
    expect(await resolver.resolve4("e2e-probe.canary.example.test")).toEqual(["198.51.100.7"]);
    await expect(resolver.resolve4("example.com")).rejects.toMatchObject({ code: "EREFUSED" });
    const url = `http://127.0.0.1:${httpPort}/v1/canary/e2e-probe.canary.example.test`;
    expect((await fetch(url)).status).toBe(401);
    const res = await fetch(url, { headers: { authorization: `Bearer ${SECRET}` } });
    expect(await res.json()).toMatchObject({ name: "e2e-probe.canary.example.test", sources: ["127.0.0.1"] });
    expect(proc.output()).toMatch(/"src":"127\.0\.0\.1".*"msg":"dns query"/);
    expect(proc.output()).toMatch(/"src":"127\.0\.0\.1".*"msg":"http request"/);
    expect(proc.output()).not.toContain(SECRET);
  });

  it("stops on SIGTERM with exit 0", async () => {
    proc.child.kill("SIGTERM");
    const { code } = await proc.exited;
    expect(code, proc.output()).toBe(0);
  });

  it("refuses to start without a secret, or with the placeholder, naming the variable", async () => {
    for (const [value, message] of [
      ["", "configuration: CHECKD_API_SECRET is required"],
      ["change-me-change-me-change-me-change-me", "configuration: CHECKD_API_SECRET is invalid: still holds"],
    ] as const) {
      const s = spawnLogged(process.execPath, ["dist/main.js", "checkd"], { ...env(), CHECKD_API_SECRET: value });
      const { code } = await s.exited;
      expect(code, s.output()).toBe(2);
      expect(s.output()).toContain(message);
    }
  });
});
