import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

describe("logger redaction", () => {
  it("never writes secrets found in logged objects", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = createLogger({ level: "debug" }, sink);
    log.info(
      {
        password: "P1",
        body: { password: "P2", new_password: "P3", old_password: "P4" },
        token: "T1",
        req: { headers: { authorization: "Bearer T2", cookie: "ccp_vnc=T3" } },
        user: { passwordHash: "$argon2id$H", private_key: "-----BEGIN OPENSSH PRIVATE KEY-----" },
        ssh_password: "P5",
        cfg: { secret: "S1", wg_private_key: "W1", uuid: "U1" },
      },
      "something happened",
    );
    const out = lines.join("");
    for (const s of ["P1", "P2", "P3", "P4", "P5", "T1", "T2", "T3", "$argon2id$H", "PRIVATE KEY", "S1", "W1", "U1"]) {
      expect(out, s).not.toContain(s);
    }
    expect(out).toContain("something happened");
    expect(out).toContain("[redacted]");
  });
});
