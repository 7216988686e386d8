import { createSocket } from "node:dgram";
import { Resolver } from "node:dns/promises";
import { connect } from "node:net";
import { Writable } from "node:stream";
import * as dnsPacket from "dns-packet";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCheckdConfig } from "../shared/config/checkd.js";
import { ConfigError } from "../shared/config/parse.js";
import { createLogger } from "../shared/logger.js";
import { answerQuery, frame, TcpFramer, type ZoneOptions } from "./dns.js";
import { bearerMatches, type Checkd, clientAddress, startCheckd } from "./server.js";
import { CanaryStore } from "./store.js";

/**
 * checkd against real sockets on the loopback: node's own resolver (c-ares) as the DNS client, raw
 * UDP and TCP for what a resolver would never send, fetch for HTTP.
 */

const SECRET = "k".repeat(40);
const ENV = {
  CHECKD_HTTP_LISTEN_ADDR: "127.0.0.1:0",
  CHECKD_DNS_LISTEN_ADDR: "127.0.0.1:0",
  CHECKD_ZONE: "Egress.Test.",
  CHECKD_ANSWER_IPV4: "203.0.113.10",
  CHECKD_API_SECRET: SECRET,
};
const quiet = () => createLogger({ level: "warn" }, new Writable({ write: (_c, _e, cb) => cb() }));

function configError(env: Record<string, string>): ConfigError {
  try {
    parseCheckdConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

/** dns-packet decodes rcode and each answer's data; its type declarations only omit them. */
type Decoded = Omit<dnsPacket.DecodedPacket, "answers"> & { rcode: string; answers?: { data?: unknown }[] };
const decode = (b: Buffer) => dnsPacket.decode(b) as unknown as Decoded;

const query = (name: string, type: dnsPacket.RecordType = "A", id = 4242) =>
  dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: "IN" }] });

/** One UDP exchange; null when nothing came back within `ms` (no fixed sleep: the deadline only bounds the wait). */
async function udpAsk(port: number, msg: Buffer, ms = 1000): Promise<Buffer | null> {
  const sock = createSocket("udp4");
  try {
    return await new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), ms);
      sock.once("message", (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      sock.send(msg, port, "127.0.0.1");
    });
  } finally {
    sock.close();
  }
}

async function tcpAsk(port: number, msgs: Buffer[], expect = msgs.length): Promise<Decoded[]> {
  const sock = connect(port, "127.0.0.1");
  const framer = new TcpFramer();
  const out: Decoded[] = [];
  return await new Promise((resolve, reject) => {
    sock.on("error", reject);
    sock.on("close", () => resolve(out));
    sock.on("data", (chunk: Buffer) => {
      for (const m of framer.push(chunk)) out.push(decode(m));
      if (out.length >= expect) sock.end();
    });
    // Split every message in two writes: the framing must reassemble them.
    const all = Buffer.concat(msgs.map(frame));
    sock.write(all.subarray(0, 3));
    sock.write(all.subarray(3));
  });
}

describe("checkd configuration", () => {
  it("normalises the zone and defaults the name server to ns.<zone>", () => {
    const cfg = parseCheckdConfig(ENV);
    expect(cfg.CHECKD_ZONE).toBe("egress.test");
    expect(cfg.CHECKD_NS_NAME).toBe("ns.egress.test");
    expect(parseCheckdConfig({ ...ENV, CHECKD_HTTP_LISTEN_ADDR: "" }).CHECKD_HTTP_LISTEN_ADDR).toEqual({ host: undefined, port: 80 });
    expect(parseCheckdConfig({ ...ENV, CHECKD_DNS_LISTEN_ADDR: "" }).CHECKD_DNS_LISTEN_ADDR).toEqual({ host: undefined, port: 53 });
  });

  it("refuses the placeholder secret, a short secret, and a missing zone or answer", () => {
    expect(configError({ ...ENV, CHECKD_API_SECRET: "change-me-change-me-change-me-change-me" })).toMatchObject({ variable: "CHECKD_API_SECRET" });
    expect(configError({ ...ENV, CHECKD_API_SECRET: "short" }).message).toContain("at least 32 bytes");
    expect(configError({ ...ENV, CHECKD_ZONE: "" }).message).toContain("CHECKD_ZONE is required");
    expect(configError({ ...ENV, CHECKD_ZONE: "bad zone" }).variable).toBe("CHECKD_ZONE");
    expect(configError({ ...ENV, CHECKD_ANSWER_IPV4: "" }).variable).toBe("CHECKD_ANSWER_IPV4");
    expect(configError({ ...ENV, CHECKD_ANSWER_IPV6: "203.0.113.10" }).variable).toBe("CHECKD_ANSWER_IPV6");
  });
});

describe("the bearer check", () => {
  it("accepts exactly `Bearer <secret>`", () => {
    expect(bearerMatches(`Bearer ${SECRET}`, SECRET)).toBe(true);
    for (const h of [undefined, "", SECRET, `bearer ${SECRET}`, `Bearer ${SECRET}x`, `Bearer ${SECRET.slice(1)}`, "Bearer ", `Basic ${SECRET}`]) {
      expect(bearerMatches(h, SECRET), String(h)).toBe(false);
    }
  });

  it("reads IPv4 clients of a dual-stack socket as plain IPv4", () => {
    expect(clientAddress("::ffff:203.0.113.20")).toBe("203.0.113.20");
    expect(clientAddress("2001:db8::1")).toBe("2001:db8::1");
  });
});

describe("checkd over the loopback", () => {
  let checkd: Checkd;
  let base: string;
  let resolver: Resolver;
  const auth = { authorization: `Bearer ${SECRET}` };
  const canary = async (name: string, headers: Record<string, string> = auth) => {
    const res = await fetch(`${base}/v1/canary/${encodeURIComponent(name)}`, { headers });
    return { status: res.status, body: (await res.json()) as { name: string; sources: string[]; queries: { address: string; count: number }[] } };
  };

  beforeAll(async () => {
    checkd = await startCheckd(parseCheckdConfig({ ...ENV, CHECKD_MAX_TCP_CONNECTIONS: "4" }), quiet());
    base = `http://127.0.0.1:${checkd.httpPort}`;
    resolver = new Resolver({ timeout: 1000, tries: 1 });
    resolver.setServers([`127.0.0.1:${checkd.dnsPort}`]);
  });
  afterAll(async () => {
    await checkd?.stop();
  });

  it("echoes the caller's address and answers /generate_204", async () => {
    const ip = await fetch(`${base}/ip`);
    expect(ip.status).toBe(200);
    expect(ip.headers.get("content-type")).toMatch(/^text\/plain/);
    expect((await ip.text()).trim()).toBe("127.0.0.1");
    const gen = await fetch(`${base}/generate_204`);
    expect(gen.status).toBe(204);
    expect(await gen.text()).toBe("");
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
    expect((await fetch(`${base}/ip`, { method: "POST" })).status).toBe(405);
  });

  it("answers every name of the zone with the configured address, and records who asked", async () => {
    const name = "uabcdefghij012345.egress.test";
    expect(await resolver.resolve4(name)).toEqual(["203.0.113.10"]);
    // Case does not matter (resolvers randomise it, 0x20): the record is under the lowercase name.
    expect(await resolver.resolve4("UAbc.Egress.TEST")).toEqual(["203.0.113.10"]);
    const seen = await canary(name);
    expect(seen.status, JSON.stringify(seen.body)).toBe(200);
    expect(seen.body).toMatchObject({ name, sources: ["127.0.0.1"] });
    expect(seen.body.queries[0]).toMatchObject({ address: "127.0.0.1", count: 1 });
    expect((await canary("uabc.egress.test")).body.sources).toEqual(["127.0.0.1"]);
    expect((await canary("never-asked.egress.test")).body).toMatchObject({ sources: [] });
  });

  it("serves SOA and NS at the apex, and an empty AAAA answer without CHECKD_ANSWER_IPV6", async () => {
    expect(await resolver.resolveSoa("egress.test")).toMatchObject({ nsname: "ns.egress.test", hostmaster: "hostmaster.egress.test" });
    expect(await resolver.resolveNs("egress.test")).toEqual(["ns.egress.test"]);
    expect(await resolver.resolve4("ns.egress.test")).toEqual(["203.0.113.10"]);
    await expect(resolver.resolve6("v6.egress.test")).rejects.toMatchObject({ code: "ENODATA" });
  });

  it("answers over TCP too, several messages on one connection", async () => {
    const answers = await tcpAsk(checkd.dnsPort, [query("ttcp1.egress.test", "A", 1), query("ttcp2.egress.test", "A", 2)]);
    expect(answers.map((a) => [a.id, a.rcode, a.flag_aa, a.answers?.[0]?.data])).toEqual([
      [1, "NOERROR", true, "203.0.113.10"],
      [2, "NOERROR", true, "203.0.113.10"],
    ]);
    expect((await canary("ttcp2.egress.test")).body.sources).toEqual(["127.0.0.1"]);
  });

  // Attack: the canary as an open resolver (or a spy on other zones). Before: a forwarding
  // dnsmasq-like setup would answer; here: REFUSED, nothing recorded, nothing forwarded.
  it("refuses names outside its zone and never records them", async () => {
    for (const name of ["example.com", "egress.test.example.com", "xegress.test", "test"]) {
      await expect(resolver.resolve4(name), name).rejects.toMatchObject({ code: "EREFUSED" });
      expect((await canary(name)).body.sources, name).toEqual([]);
    }
    // Class CHAOS (version.bind and friends): refused as well.
    const ch = await udpAsk(checkd.dnsPort, dnsPacket.encode({ type: "query", id: 7, questions: [{ type: "TXT", class: "CH", name: "version.bind" }] }));
    expect(decode(ch!).rcode).toBe("REFUSED");
  });

  // Attack: who resolved which name is the evidence of a tenant's egress; nobody but the worker reads it.
  it("answers the query API only with the shared secret", async () => {
    await resolver.resolve4("secret-name.egress.test");
    for (const headers of [{} as Record<string, string>, { authorization: "Bearer wrong" }, { authorization: `Bearer ${SECRET}extra` }, { authorization: `Basic ${SECRET}` }]) {
      const res = await fetch(`${base}/v1/canary/secret-name.egress.test`, { headers });
      const text = await res.text();
      expect(res.status, text).toBe(401);
      expect(text).not.toContain("127.0.0.1");
    }
    expect((await canary("secret-name.egress.test")).body.sources).toEqual(["127.0.0.1"]);
    expect((await canary("bad name with spaces")).status).toBe(400);
  });

  // Attack: malformed packets. Before (a hand-written parser): a short or lying header could throw
  // in the socket handler and take the process down. Now every one is answered FORMERR or dropped,
  // and the server keeps answering.
  it("survives malformed, truncated and reflected packets", async () => {
    const valid = query("after-garbage.egress.test");
    const bad: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from([1, 2, 3]),
      valid.subarray(0, 12), // header claims one question, none follows
      valid.subarray(0, valid.length - 3), // question cut short
      Buffer.concat([valid.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]), // compression pointer to itself
      (() => {
        const b = Buffer.from(valid);
        b.writeUInt16BE(0xffff, 4); // 65535 questions announced
        return b;
      })(),
    ];
    for (const [i, b] of bad.entries()) {
      const r = await udpAsk(checkd.dnsPort, b, 300);
      // Shorter than a header: nothing to answer to. Otherwise a bare 12-byte FORMERR with the id.
      if (i < 2) expect(r, b.toString("hex")).toBeNull();
      else {
        expect(r?.length, b.toString("hex")).toBe(12);
        expect(decode(r!)).toMatchObject({ id: 4242, rcode: "FORMERR" });
      }
    }
    // Another opcode (NOTIFY, UPDATE): NOTIMP.
    const notify = Buffer.from(valid);
    notify.writeUInt16BE(4 << 11, 2);
    expect(decode((await udpAsk(checkd.dnsPort, notify))!).rcode).toBe("NOTIMP");
    // A response is never answered (no reflection loop between two servers).
    const response = dnsPacket.encode({ type: "response", id: 9, questions: [{ type: "A", name: "loop.egress.test" }] });
    expect(await udpAsk(checkd.dnsPort, response, 300)).toBeNull();
    // Two questions in one query: FORMERR, not two records.
    const two = dnsPacket.encode({ type: "query", id: 10, questions: [{ type: "A", name: "q1.egress.test" }, { type: "A", name: "q2.egress.test" }] });
    expect(decode((await udpAsk(checkd.dnsPort, two))!).rcode).toBe("FORMERR");
    expect((await canary("q1.egress.test")).body.sources).toEqual([]);
    // Still alive.
    expect(await resolver.resolve4("after-garbage.egress.test")).toEqual(["203.0.113.10"]);
  });

  // Attack: connections held open over TCP. Beyond CHECKD_MAX_TCP_CONNECTIONS (4 here) a new
  // connection is closed at once; the ones inside the cap are still served.
  it("caps open TCP connections", async () => {
    const held = await Promise.all(
      Array.from({ length: 4 }, () => new Promise<ReturnType<typeof connect>>((r) => {
        const s = connect(checkd.dnsPort, "127.0.0.1", () => r(s));
      })),
    );
    try {
      const extra = connect(checkd.dnsPort, "127.0.0.1");
      const closed = await new Promise<boolean>((resolve) => {
        extra.on("close", () => resolve(true));
        extra.on("error", () => resolve(true));
        extra.on("connect", () => extra.write(frame(query("over-cap.egress.test"))));
        extra.on("data", () => resolve(false));
      });
      expect(closed).toBe(true);
    } finally {
      for (const s of held) s.destroy();
    }
    // Once they are gone, TCP serves again (the server notices the closes asynchronously).
    const deadline = Date.now() + 5000;
    for (;;) {
      const got = await tcpAsk(checkd.dnsPort, [query("after-cap.egress.test")]).catch(() => []);
      if (got.length === 1) break;
      if (Date.now() > deadline) throw new Error("TCP did not serve again after the held connections closed");
    }
  });

  // Attack: a flood of unique names. Before (an unbounded Map): memory grew with every query.
  // Now at most CHECKD_MAX_NAMES names are kept, the least recently queried dropped first.
  it("keeps at most CHECKD_MAX_NAMES names under a flood of unique names, served over UDP", async () => {
    const small = await startCheckd(parseCheckdConfig({ ...ENV, CHECKD_MAX_NAMES: "50" }), quiet());
    try {
      for (let i = 0; i < 400; i++) {
        const r = await udpAsk(small.dnsPort, query(`flood${i}.egress.test`, "A", i));
        expect(r, `query ${i}`).not.toBeNull();
      }
      expect(small.store.size).toBe(50);
      expect(small.store.lookup("flood0.egress.test")).toBeNull();
      expect(small.store.lookup("flood399.egress.test")?.sources.map((s) => s.address)).toEqual(["127.0.0.1"]);
    } finally {
      await small.stop();
    }
  });
});

describe("the canary store's bounds", () => {
  it("holds at most maxNames names and maxSourcesPerName addresses, whatever the flood", () => {
    const store = new CanaryStore({ maxNames: 1000, maxSourcesPerName: 4, ttlMs: 60_000 });
    for (let i = 0; i < 200_000; i++) store.record(`n${i}.egress.test`, `198.51.100.${i % 250}`);
    expect(store.size).toBe(1000);
    for (let i = 0; i < 1000; i++) store.record("hot.egress.test", `203.0.113.${i % 256}`);
    const hot = store.lookup("hot.egress.test")!;
    expect(hot.sources).toHaveLength(4);
    expect(hot.dropped).toBe(1000 - 4 * 4); // each of the first 4 addresses repeats 4 times (1000/256)
    expect(store.size).toBe(1000);
  });

  it("keeps a recently queried name over older ones, and forgets a name after the TTL", () => {
    let now = 0;
    const store = new CanaryStore({ maxNames: 3, maxSourcesPerName: 4, ttlMs: 1000, now: () => now });
    store.record("a", "203.0.113.1");
    store.record("b", "203.0.113.1");
    store.record("c", "203.0.113.1");
    store.record("a", "203.0.113.2"); // a is now the most recent
    store.record("d", "203.0.113.1"); // evicts b, the least recently queried
    expect(store.lookup("b")).toBeNull();
    expect(store.lookup("a")?.sources.map((s) => s.address)).toEqual(["203.0.113.1", "203.0.113.2"]);
    now = 1001;
    expect(store.lookup("a")).toBeNull();
    store.record("e", "203.0.113.1"); // sweeps the expired ones
    expect(store.size).toBe(1);
  });
});

describe("answerQuery on arbitrary bytes", () => {
  const seen: string[] = [];
  const zone: ZoneOptions = { zone: "egress.test", answerIpv4: "203.0.113.10", nsName: "ns.egress.test", record: (n) => seen.push(n) };

  it("never throws, never answers a response, and never answers much more than it was sent", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (bytes) => {
        const buf = Buffer.from(bytes);
        const out = answerQuery(buf, "203.0.113.99", zone);
        if (out) expect(out.length).toBeLessThanOrEqual(Math.max(buf.length, 12) + 600);
        if (buf.length >= 3 && buf[2]! & 0x80) expect(out).toBeNull();
      }),
      { numRuns: 5000 },
    );
  });

  it("records only names inside the zone, from well-formed queries", () => {
    seen.length = 0;
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}$/), (name) => {
        const out = answerQuery(query(name), "203.0.113.99", zone);
        const rcode = decode(out!).rcode;
        const inside = name === "egress.test" || name.endsWith(".egress.test");
        expect(rcode).toBe(inside ? "NOERROR" : "REFUSED");
      }),
    );
    expect(seen.every((n) => n === "egress.test" || n.endsWith(".egress.test"))).toBe(true);
  });
});
