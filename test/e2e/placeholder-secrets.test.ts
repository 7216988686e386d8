import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseEnv } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { buildDist, spawnLogged } from "../../shared/test/processes.js";

/**
 * Issue 10 §5: a process started with a "change-me" secret copied from `.env.example` exits at
 * once, naming the variable — before it opens a database connection or a listener. The rest of
 * the environment is valid (and nothing would be reachable: the processes never get that far).
 */
const example = parseEnv(readFileSync(".env.example", "utf8")) as Record<string, string>;
const valid: Record<string, string> = {
  DATABASE_URL: `postgres://ccp:${randomBytes(8).toString("hex")}@127.0.0.1:1/none`,
  REDIS_URL: "redis://127.0.0.1:1",
  SECRETS_KEY: `v1:${randomBytes(32).toString("base64")}`,
  PUBLIC_BASE_URL: "http://127.0.0.1:1",
  ADMIN_PASSWORD: randomBytes(12).toString("hex"),
  ADMIN_JWT_SECRET: randomBytes(32).toString("hex"),
  EGRESS_DEFAULT_DNS_SERVER: "203.0.113.53",
  EGRESS_CHECK_URL: "http://203.0.113.10/generate_204",
  EGRESS_ECHO_URL: "http://203.0.113.10/ip",
  EGRESS_DNS_CANARY_DOMAIN: "egress.test",
  EGRESS_DNS_CANARY_API: "http://203.0.113.53:8053",
  EGRESS_DNS_CANARY_API_SECRET: randomBytes(32).toString("hex"),
  EGRESS_CHECK_FORBIDDEN_RESOLVER: "203.0.113.54",
};

const cases: [role: "api" | "worker" | "sshd", variable: string][] = [
  ["api", "ADMIN_PASSWORD"],
  ["api", "ADMIN_JWT_SECRET"],
  ["api", "DATABASE_URL"],
  ["worker", "DATABASE_URL"],
  ["worker", "EGRESS_DNS_CANARY_API_SECRET"],
  ["sshd", "SECRETS_KEY"],
];

beforeAll(() => buildDist());

describe("processes refuse the placeholder secrets of .env.example", () => {
  for (const [role, variable] of cases) {
    it(`${role} with ${variable} from .env.example exits non-zero naming it`, async () => {
      const placeholder = example[variable]!;
      expect(placeholder).toContain("change-me");
      // PATH etc. from this process; every configuration variable set explicitly (an empty value
      // would let a developer's .env fill it in).
      const s = spawnLogged(process.execPath, ["dist/main.js", role], { PATH: process.env.PATH, ...valid, [variable]: placeholder });
      const { code } = await s.exited;
      expect(code, s.output()).not.toBe(0);
      expect(s.output()).toContain(`configuration: ${variable} is invalid: still holds the "change-me" placeholder`);
      expect(s.output()).not.toContain(placeholder);
    });
  }
});
