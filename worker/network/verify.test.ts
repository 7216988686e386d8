import { describe, expect, it } from "vitest";
import { canarySources, type CanaryFetch } from "./canary.js";
import { type CheckInputs, evaluateChecks, parseEcho, randomLabel } from "./verify.js";

const ok = (body = "", code = 200, latency = 12) => ({ ok: code >= 200 && code < 300, code, latency_ms: latency, body, error: null });
const none = { ok: false, code: 0, latency_ms: null, body: "", error: "curl_28" };

function inputs(over: Partial<CheckInputs> = {}): CheckInputs {
  return {
    checkUrl: "http://203.0.113.10/generate_204",
    expectedIp: "203.0.113.20",
    connectivity: ok("", 204),
    echo: ok("203.0.113.20\n"),
    dns: {
      names: [
        { name: "ua.egress.test", via: "udp", resolved: true, sources: ["203.0.113.20"] },
        { name: "ta.egress.test", via: "tcp", resolved: true, sources: ["203.0.113.20"] },
        { name: "ga.egress.test", via: "system", resolved: true, sources: ["203.0.113.20"] },
      ],
      forbiddenAnswered: false,
    },
    allowed: ["203.0.113.20", "203.0.113.53"],
    allowedCidrs: [],
    underlay: ["203.0.113.130", "203.0.113.1"],
    underlayCidrs: [],
    ...over,
  };
}

const withSources = (sources: (string[] | null)[], resolved = [true, true, true]) => ({
  names: (["udp", "tcp", "system"] as const).map((via, i) => ({ name: `${via}.egress.test`, via, resolved: resolved[i]!, sources: sources[i]! })),
  forbiddenAnswered: false,
});

describe("verification verdict (docs/egress.md#verification)", () => {
  it("passes when every check passes", () => {
    const v = evaluateChecks(inputs());
    expect(v).toEqual({
      status: "passed",
      error_code: null,
      results: {
        connectivity: { status: "pass", latency_ms: 12 },
        exit_ip: { status: "pass", expected: "203.0.113.20", observed: "203.0.113.20" },
        dns_leak: { status: "pass", resolvers_seen: ["203.0.113.20"] },
      },
    });
  });

  it("a wrong exit IP is egress_ip_mismatch, with expected and observed", () => {
    const v = evaluateChecks(inputs({ echo: ok('{"ip":"203.0.113.99"}') }));
    expect(v.error_code).toBe("egress_ip_mismatch");
    expect(v.results.exit_ip).toEqual({
      status: "fail",
      expected: "203.0.113.20",
      observed: "203.0.113.99",
      error: "exit IP 203.0.113.99 does not match the declared ip_address 203.0.113.20",
    });
  });

  it("no answer at all is egress_unreachable, observed null", () => {
    const v = evaluateChecks(inputs({ connectivity: none, echo: none, dns: withSources([[], [], []], [false, false, false]) }));
    expect(v.error_code).toBe("egress_unreachable");
    expect(v.results.connectivity).toMatchObject({ status: "fail", latency_ms: null });
    expect(v.results.exit_ip).toMatchObject({ status: "fail", observed: null });
    expect(v.results.dns_leak.status).toBe("fail");
  });

  it("a non-2xx connectivity answer fails it", () => {
    expect(evaluateChecks(inputs({ connectivity: ok("", 503) })).error_code).toBe("egress_unreachable");
  });

  it("an underlay source is a dns_leak even when it is also allowed", () => {
    const v = evaluateChecks(inputs({ dns: withSources([["203.0.113.20"], ["203.0.113.130"], ["203.0.113.20"]]) }));
    expect(v.error_code).toBe("dns_leak");
    expect(v.results.dns_leak.resolvers_seen).toEqual(["203.0.113.130", "203.0.113.20"]);
    const inCidr = evaluateChecks(
      inputs({
        dns: withSources([["198.51.100.7"], ["203.0.113.20"], ["203.0.113.20"]]),
        allowedCidrs: [{ address: "198.51.100.0", prefix: 24, family: 4 }],
        underlayCidrs: [{ address: "198.51.100.7", prefix: 32, family: 4 }],
      }),
    );
    expect(inCidr.error_code).toBe("dns_leak");
  });

  it("EGRESS_DNS_ALLOWED_RESOLVERS extends the allowed set", () => {
    const v = evaluateChecks(
      inputs({ dns: withSources([["198.51.100.7"], ["203.0.113.20"], ["203.0.113.20"]]), allowedCidrs: [{ address: "198.51.100.0", prefix: 24 }] }),
    );
    expect(v.status).toBe("passed");
  });

  it("a name answered without reaching the canary is a leak", () => {
    const v = evaluateChecks(inputs({ dns: withSources([["203.0.113.20"], [], ["203.0.113.20"]]) }));
    expect(v.error_code).toBe("dns_leak");
    expect(v.results.dns_leak.error).toMatch(/tcp lookup answered without reaching the canary/);
  });

  it("an answer from the forbidden resolver is a leak", () => {
    const v = evaluateChecks(inputs({ dns: { ...withSources([["203.0.113.20"], ["203.0.113.20"], ["203.0.113.20"]]), forbiddenAnswered: true } }));
    expect(v.error_code).toBe("dns_leak");
  });

  it("DNS that did not resolve, with no disallowed source, is egress_unreachable", () => {
    const v = evaluateChecks(inputs({ dns: withSources([["203.0.113.20"], [], ["203.0.113.20"]], [true, false, true]) }));
    expect(v.error_code).toBe("egress_unreachable");
    // ... but with a disallowed source it is a leak.
    const leak = evaluateChecks(inputs({ dns: withSources([["203.0.113.130"], [], ["203.0.113.20"]], [false, false, true]) }));
    expect(leak.error_code).toBe("dns_leak");
  });

  it("connectivity failures outrank a mismatch and a leak", () => {
    const v = evaluateChecks(inputs({ connectivity: none, echo: ok("203.0.113.99"), dns: withSources([["203.0.113.130"], ["203.0.113.20"], ["203.0.113.20"]]) }));
    expect(v.error_code).toBe("egress_unreachable");
  });

  it("parses echo answers", () => {
    expect(parseEcho(" 203.0.113.20\n")).toBe("203.0.113.20");
    expect(parseEcho('{"ip":"::ffff:203.0.113.20"}')).toBe("203.0.113.20");
    expect(parseEcho("<html>")).toBeNull();
    expect(parseEcho("")).toBeNull();
  });

  it("makes fresh 16-character labels", () => {
    const a = randomLabel();
    expect(a).toMatch(/^[a-z0-9]{16}$/);
    expect(randomLabel()).not.toBe(a);
  });
});

describe("canary polling", () => {
  const fake = (answers: (string[] | "error")[]): { fetcher: CanaryFetch; calls: string[] } => {
    const calls: string[] = [];
    let i = 0;
    return {
      calls,
      fetcher: async (url, init) => {
        calls.push(`${url} ${init.headers.authorization}`);
        const a = answers[Math.min(i++, answers.length - 1)]!;
        if (a === "error") throw new Error("down");
        return { status: 200, json: async () => ({ name: "x", sources: a }) };
      },
    };
  };

  it("polls until the name shows up, then reads once more", async () => {
    const f = fake([[], [], ["203.0.113.20"], ["203.0.113.20", "203.0.113.130"]]);
    const s = await canarySources({ url: "http://203.0.113.53:8053", secret: "s3cret" }, "ux.egress.test", { fetcher: f.fetcher });
    expect(s).toEqual(["203.0.113.20", "203.0.113.130"]);
    expect(f.calls[0]).toBe("http://203.0.113.53:8053/v1/canary/ux.egress.test Bearer s3cret");
    expect(f.calls).toHaveLength(4);
  });

  it("gives up after the wait: [] when the canary answered, null when it never did", async () => {
    const api = { url: "http://c:1", secret: "s" };
    expect(await canarySources(api, "n", { fetcher: fake([[]]).fetcher, maxWaitMs: 250 })).toEqual([]);
    expect(await canarySources(api, "n", { fetcher: fake(["error"]).fetcher, maxWaitMs: 250 })).toBeNull();
  });

  it("with `until`, polls while the probe runs and counts the wait from when it is done", async () => {
    const api = { url: "http://c:1", secret: "s" };
    // Seen while the probe still runs: returned without waiting for it.
    let done!: () => void;
    const probe = new Promise<void>((r) => (done = r));
    const seen = fake([[], ["203.0.113.20"]]);
    expect(await canarySources(api, "n", { fetcher: seen.fetcher, maxWaitMs: 50, until: probe })).toEqual(["203.0.113.20"]);
    // Never seen: no give-up while the probe runs, however long past maxWaitMs (counted by
    // polls, not by the clock), then the wait runs from the probe's end.
    const never = fake([[]]);
    let settled = false;
    const p = canarySources(api, "n", { fetcher: never.fetcher, maxWaitMs: 50, until: probe }).then((v) => {
      settled = true;
      return v;
    });
    while (never.calls.length < 30) await new Promise((r) => setTimeout(r, 5));
    expect(settled).toBe(false);
    done();
    expect(await p).toEqual([]);
  });
});
