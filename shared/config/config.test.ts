import { readFileSync } from "node:fs";
import { parseEnv } from "node:util";
import { describe, expect, it } from "vitest";
import { parseApiConfig } from "./api.js";
import { ConfigError } from "./parse.js";
import { parseSshdConfig } from "./sshd.js";
import { EGRESS_CHECK_VARIABLES, parseWorkerConfig } from "./worker.js";

const KEY = `v1:${Buffer.alloc(32, 1).toString("base64")}`;
const common = { DATABASE_URL: "postgres://u:p@127.0.0.1:5432/db", SECRETS_KEY: KEY };
const api = {
  ...common,
  PUBLIC_BASE_URL: "https://cloud.example.com/",
  ADMIN_PASSWORD: "password1",
  ADMIN_JWT_SECRET: "x".repeat(32),
};
const egress = {
  EGRESS_DEFAULT_DNS_SERVER: "203.0.113.53",
  EGRESS_CHECK_URL: "http://203.0.113.10/generate_204",
  EGRESS_ECHO_URL: "http://203.0.113.10/ip",
  EGRESS_DNS_CANARY_DOMAIN: "egress.test",
  EGRESS_DNS_CANARY_API: "http://203.0.113.53:8053",
  EGRESS_DNS_CANARY_API_SECRET: "s".repeat(40),
  EGRESS_CHECK_FORBIDDEN_RESOLVER: "203.0.113.54",
};

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("api configuration", () => {
  it("applies the documented defaults", () => {
    const cfg = parseApiConfig(api);
    expect(cfg.PUBLIC_BASE_URL).toBe("https://cloud.example.com");
    expect(cfg.API_LISTEN_ADDR).toEqual({ host: undefined, port: 8080 });
    expect(cfg.ENTRY_LISTEN_ADDR).toBeUndefined();
    expect(cfg).toMatchObject({
      REDIS_URL: "redis://127.0.0.1:6379",
      REDIS_PREFIX: "ccp",
      ADMIN_USERNAME: "admin",
      JWT_TTL_SECONDS: 86400,
      AUTH_FAIL_MAX_PER_USER: 10,
      AUTH_FAIL_MAX_PER_IP: 30,
      AUTH_FAIL_WINDOW_SECONDS: 900,
      SSH_PUBLIC_HOST: "cloud.example.com",
      SSH_PUBLIC_PORT: 2222,
      HANDOFF_TICKET_TTL_SECONDS: 120,
      HANDOFF_WINDOW_SECONDS: 300,
      EGRESS_TEST_WAIT_SECONDS: 35,
      HEARTBEAT_FRESHNESS_SECONDS: 15,
      EGRESS_REQUIRED: false,
      LOG_LEVEL: "info",
      LOG_FORMAT: "json",
    });
  });

  it("names the first missing variable", () => {
    const { DATABASE_URL: _omit, ...rest } = api;
    expect(errorOf(() => parseApiConfig(rest)).variable).toBe("DATABASE_URL");
    expect(errorOf(() => parseApiConfig({ ...api, ADMIN_PASSWORD: "" })).message).toBe(
      "configuration: ADMIN_PASSWORD is required",
    );
  });

  it.each([
    ["ADMIN_JWT_SECRET", "too-short"],
    ["PUBLIC_BASE_URL", "https://cloud.example.com/path"],
    ["PUBLIC_BASE_URL", "ftp://cloud.example.com"],
    ["PUBLIC_BASE_URL", "https://user:pw@cloud.example.com"],
    ["SECRETS_KEY", "v1:short"],
    ["API_LISTEN_ADDR", "8080"],
    ["API_LISTEN_ADDR", ":70000"],
    ["JWT_TTL_SECONDS", "ten"],
    ["TRUST_PROXY_CIDRS", "10.0.0.0/33"],
    ["ADMIN_USERNAME", "-bad"],
    ["LOG_LEVEL", "verbose"],
  ])("rejects invalid %s=%s naming it", (name, value) => {
    const err = errorOf(() => parseApiConfig({ ...api, [name]: value }));
    expect(err.variable).toBe(name);
    expect(err.message).toMatch(new RegExp(`^configuration: ${name} is invalid`));
  });

  it("parses listen addresses and CIDR lists", () => {
    const cfg = parseApiConfig({
      ...api,
      API_LISTEN_ADDR: "127.0.0.1:9000",
      ENTRY_LISTEN_ADDR: "[::1]:80",
      TRUST_PROXY_CIDRS: "10.0.0.0/8, 192.0.2.1",
      SSH_PUBLIC_HOST: "ssh.example.com",
    });
    expect(cfg.API_LISTEN_ADDR).toEqual({ host: "127.0.0.1", port: 9000 });
    expect(cfg.ENTRY_LISTEN_ADDR).toEqual({ host: "::1", port: 80 });
    expect(cfg.TRUST_PROXY_CIDRS).toEqual([
      { address: "10.0.0.0", prefix: 8, family: 4 },
      { address: "192.0.2.1", prefix: 32, family: 4 },
    ]);
    expect(cfg.SSH_PUBLIC_HOST).toBe("ssh.example.com");
  });
});

describe("worker configuration", () => {
  it("takes the egress check variables all together, with no defaults that could point at a public service", () => {
    const cfg = parseWorkerConfig({ ...common, ...egress });
    expect(cfg.EGRESS_UNBOUND_POLICY).toBe("block");
    expect(cfg.EGRESS_CHECKS).toEqual({
      checkUrl: "http://203.0.113.10/generate_204",
      echoUrl: "http://203.0.113.10/ip",
      canaryDomain: "egress.test",
      canaryApi: "http://203.0.113.53:8053",
      canaryApiSecret: "s".repeat(40),
      forbiddenResolver: "203.0.113.54",
      defaultDnsServer: "203.0.113.53",
    });
    // Any one missing from the set: the error names it and lists every missing one.
    for (const name of EGRESS_CHECK_VARIABLES) {
      const err = errorOf(() => parseWorkerConfig({ ...common, ...egress, [name]: "" }));
      expect(err.variable).toBe(name);
      expect(err.message).toContain(`missing: ${name}`);
    }
    const two = errorOf(() => parseWorkerConfig({ ...common, ...egress, EGRESS_ECHO_URL: "", EGRESS_DNS_CANARY_API_SECRET: "" }));
    expect(two.message).toContain("EGRESS_ECHO_URL is required");
    expect(two.message).toContain("missing: EGRESS_ECHO_URL, EGRESS_DNS_CANARY_API_SECRET");
    // With the checks, the default resolver is required too.
    expect(errorOf(() => parseWorkerConfig({ ...common, ...egress, EGRESS_DEFAULT_DNS_SERVER: "" })).variable).toBe("EGRESS_DEFAULT_DNS_SERVER");
  });

  it("starts without any egress check variable: EGRESS_CHECKS is null", () => {
    const cfg = parseWorkerConfig(common);
    expect(cfg.EGRESS_CHECKS).toBeNull();
    expect(cfg.EGRESS_DEFAULT_DNS_SERVER).toBeUndefined();
    // Direct-mode hosts need a resolver even without the checks.
    expect(errorOf(() => parseWorkerConfig({ ...common, EGRESS_UNBOUND_POLICY: "direct" })).variable).toBe("EGRESS_DEFAULT_DNS_SERVER");
    expect(parseWorkerConfig({ ...common, EGRESS_UNBOUND_POLICY: "direct", EGRESS_DEFAULT_DNS_SERVER: "203.0.113.53" }).EGRESS_CHECKS).toBeNull();
  });

  it("refuses a placeholder or short canary API secret", () => {
    expect(errorOf(() => parseWorkerConfig({ ...common, ...egress, EGRESS_DNS_CANARY_API_SECRET: "change-me".repeat(5) })).message).toContain("change-me");
    expect(errorOf(() => parseWorkerConfig({ ...common, ...egress, EGRESS_DNS_CANARY_API_SECRET: "short" })).message).toContain("at least 32 bytes");
  });

  it("has the documented defaults", () => {
    const cfg = parseWorkerConfig({ ...common, ...egress });
    expect(cfg).toMatchObject({
      WORKER_CONCURRENCY: 4,
      HOST_IMAGE: "cloud-cli-proxy/host:latest",
      GATEWAY_IMAGE: "cloud-cli-proxy/gateway:latest",
      MGMT_NETWORK: "ccp-mgmt",
      EGRESS_UNDERLAY_NETWORK: "ccp-underlay",
      RECONCILE_INTERVAL_SECONDS: 30,
      TASK_STALE_AFTER_SECONDS: 600,
      HEARTBEAT_INTERVAL_SECONDS: 5,
    });
    expect(cfg.WORKER_ID).toMatch(new RegExp(`-${process.pid}-[0-9a-f]{8}$`));
  });

  it("gives two workers of one process image (same hostname, same pid) distinct default ids", () => {
    // Compose replicas with host networking all run as PID 1 under the machine's hostname.
    const ids = new Set([0, 1, 2].map(() => parseWorkerConfig({ ...common, ...egress }).WORKER_ID));
    expect(ids.size).toBe(3);
  });
});

describe("sshd configuration", () => {
  it("has the documented defaults", () => {
    const cfg = parseSshdConfig(common);
    expect(cfg.SSH_LISTEN_ADDR).toEqual({ host: undefined, port: 2222 });
    expect(cfg).toMatchObject({ SSH_MAX_AUTH_TRIES: 3, SSH_LOGIN_GRACE_SECONDS: 30, SSH_MAX_SESSIONS_PER_HOST: 10 });
  });
});

describe("placeholder secrets of .env.example (issue 10 §5)", () => {
  // The shipped file itself, so a placeholder added there later is covered too.
  const example = parseEnv(readFileSync(".env.example", "utf8")) as Record<string, string>;
  const placeholders = Object.entries(example).filter(([, v]) => /change-me/i.test(v));
  const parsers = { api: parseApiConfig, worker: parseWorkerConfig, sshd: parseSshdConfig } as const;
  const valid = { ...api, ...egress };

  it("the example's secrets are all placeholders", () => {
    expect(placeholders.map(([k]) => k).sort()).toEqual(["ADMIN_JWT_SECRET", "ADMIN_PASSWORD", "DATABASE_URL", "EGRESS_DNS_CANARY_API_SECRET", "SECRETS_KEY"]);
  });

  for (const [name, value] of placeholders) {
    it(`every process that reads ${name} refuses its placeholder, naming the variable and not the value`, () => {
      const readers = name.startsWith("ADMIN_") ? (["api"] as const) : name.startsWith("EGRESS_") ? (["worker"] as const) : (["api", "worker", "sshd"] as const);
      for (const process of readers) {
        const err = errorOf(() => parsers[process]({ ...valid, [name]: value }));
        expect(err.variable, process).toBe(name);
        expect(err.message).toContain("change-me");
        expect(err.message).not.toContain(value);
      }
    });
  }

  it("catches the placeholder anywhere in the value and in any case, and in the other secret variables", () => {
    expect(errorOf(() => parseApiConfig({ ...api, ADMIN_PASSWORD: "my-CHANGE-ME-pass" })).variable).toBe("ADMIN_PASSWORD");
    expect(errorOf(() => parseApiConfig({ ...api, ADMIN_JWT_SECRET: `${"x".repeat(40)}changeme` })).variable).toBe("ADMIN_JWT_SECRET");
    expect(errorOf(() => parseSshdConfig({ ...common, REDIS_URL: "redis://:change-me@127.0.0.1:6379" })).variable).toBe("REDIS_URL");
    expect(errorOf(() => parseSshdConfig({ ...common, SECRETS_KEY_PREVIOUS: "v0:change-me" })).variable).toBe("SECRETS_KEY_PREVIOUS");
    // Real values pass.
    expect(parseApiConfig(api).ADMIN_PASSWORD).toBe("password1");
  });
});
