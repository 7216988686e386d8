import { describe, expect, it } from "vitest";
import type { ExecResult, Runtime } from "../runtime/runtime.js";
import { startProbe } from "./probe.js";

/** The combined probe commands (`ccp-probe checks|isolation`, docs/egress.md#verification) and an image without them. */
function fakeProbeRuntime(answer: (argv: string[]) => ExecResult) {
  const runtime = {
    createProbe: async () => {},
    removeContainer: async () => {},
    exec: async (_name: string, argv: string[]) => answer(argv.slice(1)),
  } as unknown as Runtime;
  return { runtime, config: { GATEWAY_IMAGE: "gw" } as never };
}

const http = (code: number) => ({ ok: code >= 200 && code < 300, code, latency_ms: code ? 3 : null, body_b64: Buffer.from("203.0.113.20").toString("base64"), error: code ? null : "curl_7" });
const dns = (server: string, responded: boolean) => ({ server, responded, addresses: responded ? ["203.0.113.10"] : [] });
const OLD_USAGE = { exitCode: 2, stdout: "", stderr: "ccp-probe: usage: ccp-probe hold|http|dns|resolve|dns-check …\n" };

describe("probe commands", () => {
  it("isolation: the three answers of one exec", async () => {
    const deps = fakeProbeRuntime(() => ({ exitCode: 0, stdout: JSON.stringify({ check: http(0), echo: http(0), forbidden: dns("203.0.113.54", false) }), stderr: "" }));
    const p = await startProbe(deps, "t", "gw");
    expect(await p.isolation("http://203.0.113.10/generate_204", "http://203.0.113.10/ip", "203.0.113.54", "fx.egress.test")).toMatchObject({
      check: { code: 0, error: "curl_7" },
      echo: { code: 0 },
      forbidden: { server: "203.0.113.54", responded: false },
    });
  });

  it("checks: connectivity, echo body and the DNS observation of one exec", async () => {
    const d = { resolver: "198.51.100.1", udp: dns("198.51.100.1", true), tcp: dns("198.51.100.1", true), system: { addresses: ["203.0.113.10"] }, forbidden: dns("203.0.113.54", false) };
    const deps = fakeProbeRuntime(() => ({ exitCode: 0, stdout: JSON.stringify({ connectivity: http(204), echo: http(200), dns: d }), stderr: "" }));
    const p = await startProbe(deps, "t", "gw");
    const r = await p.checks("http://a/", "http://b/", "abc", "egress.test", "203.0.113.54", 10, 7);
    expect(r).toMatchObject({ connectivity: { ok: true, code: 204 }, echo: { body: "203.0.113.20" }, dns: d });
  });

  it("an image without the commands: null, so the caller runs one exec per check", async () => {
    const p = await startProbe(fakeProbeRuntime(() => OLD_USAGE), "t", "gw");
    expect(await p.isolation("http://a/", "http://b/", "203.0.113.54", "fx.egress.test")).toBeNull();
    expect(await p.checks("http://a/", "http://b/", "abc", "egress.test", "203.0.113.54", 10, 7)).toBeNull();
  });

  it("a probe that did not run reads as not run, never as silence", async () => {
    const p = await startProbe(fakeProbeRuntime(() => ({ exitCode: 137, stdout: "", stderr: "" })), "t", "gw");
    const r = await p.isolation("http://a/", "http://b/", "203.0.113.54", "fx.egress.test");
    expect(r?.check.error).toBe("probe_failed");
    expect(r?.forbidden.server).toBeNull();
  });
});
