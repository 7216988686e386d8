import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

/**
 * A marker that cannot occur in a log line by chance: a timestamp, a pid or a level never
 * contains 24 random hex digits. (Two-character markers failed whenever the ISO time's
 * hour started with 1 or 2.)
 */
const marker = (name: string) => `${name}-${randomBytes(12).toString("hex")}`;

describe("logger redaction", () => {
  it("never writes secrets found in logged objects", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const m = {
      p1: marker("pw1"), p2: marker("pw2"), p3: marker("pw3"), p4: marker("pw4"), p5: marker("pw5"),
      t1: marker("tok1"), t2: marker("tok2"), t3: marker("tok3"),
      hash: `$argon2id$${marker("hash")}`, key: `-----BEGIN OPENSSH PRIVATE KEY-----${marker("key")}`,
      s1: marker("secret"), w1: marker("wgkey"), u1: marker("uuid"),
    };
    const log = createLogger({ level: "debug" }, sink);
    log.info(
      {
        password: m.p1,
        body: { password: m.p2, new_password: m.p3, old_password: m.p4 },
        token: m.t1,
        req: { headers: { authorization: `Bearer ${m.t2}`, cookie: `ccp_vnc=${m.t3}` } },
        user: { passwordHash: m.hash, private_key: m.key },
        ssh_password: m.p5,
        cfg: { secret: m.s1, wg_private_key: m.w1, uuid: m.u1 },
      },
      "something happened",
    );
    const out = lines.join("");
    for (const [name, s] of Object.entries(m)) {
      expect(out, name).not.toContain(s);
    }
    expect(out).not.toContain("PRIVATE KEY");
    expect(out).not.toContain("$argon2id$");
    expect(out).toContain("something happened");
    expect(out).toContain("[redacted]");
  });
});
