import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEgressSecrets } from "../../shared/services/egress/manage.js";
import { generateWgKeyPair } from "../../shared/services/egress/wg-keys.js";
import { type ApiHarness, type TestResponse, type TestUser, createApiHarness, findSecrets } from "../../shared/test/api-harness.js";
import { type HostStatus, insertBindingRow, insertHostRow, insertTaskRow } from "../../shared/test/rows.js";

/**
 * Egress IP API (docs/api.md#egress-ips, docs/api.md#secrets at the HTTP level, and
 * the API side of 67). Hosts are fixture rows: the worker that would run them is not part of this
 * suite. Only documentation addresses (RFC 5737) and `.example`/`.test` names appear here.
 */
let h: ApiHarness;
let admin: string;
let adminId: string;
let user: TestUser;
/** Every secret this file hands to the API: none may reach a response, a log line, an event or a column. */
const secrets: string[] = [];

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  const [row] = await h.database.sql<{ id: string }[]>`select id from users where role = 'admin'`;
  adminId = row!.id;
  user = await h.createUser();
});
afterAll(async () => {
  await h?.close();
});

const sql = () => h.database.sql;
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const B64_32 = /^[A-Za-z0-9+/]{43}=$/;
const COMMON_KEYS = [
  "binding_id",
  "bound_host_id",
  "created_at",
  "health",
  "id",
  "ip_address",
  "label",
  "last_test",
  "provider",
  "status",
  "tunnel_type",
  "updated_at",
];
const WG_KEYS = [
  ...COMMON_KEYS,
  "wg_allowed_ips",
  "wg_client_public_key",
  "wg_dns_server",
  "wg_endpoint",
  "wg_peer_address",
  "wg_preshared_key",
  "wg_private_key",
  "wg_public_key",
].sort();
const PROXY_KEYS = [...COMMON_KEYS, "proxy_config", "proxy_dns_server", "udp"].sort();

/** Remember a secret and hand it back. */
const secret = <T extends string>(v: T): T => {
  secrets.push(v);
  return v;
};
const peerKey = () => generateWgKeyPair().publicKey;
const psk = () => secret(randomBytes(32).toString("base64"));
const pass = (stem = "pw") => secret(`${stem}-${randomBytes(9).toString("hex")}`);

// The reference examples use .10, .5, .20, .50, .30 and .100; generated addresses start at .101.
let ipSeq = 0;
const nextIp = () => {
  const n = ipSeq++;
  return `${["203.0.113", "198.51.100", "192.0.2"][n % 3]}.${101 + Math.floor(n / 3)}`;
};

const wgBody = (over: Record<string, unknown> = {}) => ({
  label: `wg-${randomBytes(3).toString("hex")}`,
  ip_address: nextIp(),
  tunnel_type: "wireguard",
  provider: "manual",
  wg_endpoint: "vpn-provider.example.com:51820",
  wg_public_key: peerKey(),
  wg_preshared_key: psk(),
  wg_allowed_ips: "0.0.0.0/0",
  wg_dns_server: "192.0.2.53",
  wg_peer_address: "10.0.0.2/32",
  ...over,
});

const ssConfig = (over: Record<string, unknown> = {}) => ({
  type: "shadowsocks",
  server: "proxy.example.test",
  server_port: 8388,
  method: "aes-256-gcm",
  password: pass("ss"),
  ...over,
});

const proxyBody = (config: Record<string, unknown> = ssConfig(), over: Record<string, unknown> = {}) => ({
  label: `px-${randomBytes(3).toString("hex")}`,
  ip_address: nextIp(),
  tunnel_type: "proxy",
  provider: "manual",
  proxy_config: config,
  ...over,
});

const post = (body: unknown) => h.request("POST", "/v1/admin/egress-ips", { token: admin, body });
const put = (id: string, body: unknown) => h.request("PUT", `/v1/admin/egress-ips/${id}`, { token: admin, body });
const get = (id: string) => h.request("GET", `/v1/admin/egress-ips/${id}`, { token: admin });
const del = (id: string) => h.request("DELETE", `/v1/admin/egress-ips/${id}`, { token: admin });

async function create(body: unknown): Promise<Record<string, any>> {
  const res = await post(body);
  expect(res.status, res.text).toBe(201);
  return res.body.egress_ip;
}

const stored = (id: string) => loadEgressSecrets(h.database.db, h.deps.secrets, id);

async function egressEvents(id: string, type?: string) {
  return sql()<{ type: string; level: string; actor_id: string | null; user_id: string | null; host_id: string | null; task_id: string | null; metadata: Record<string, any> }[]>`
    select type, level, actor_id, user_id, host_id, task_id, metadata from events
    where metadata->>'egress_ip_id' = ${id} ${type ? sql()`and type = ${type}` : sql()``}
    order by created_at, id`;
}

async function tasksOf(egressId: string) {
  return sql()<{ id: string; kind: string; status: string; host_id: string | null; egress_ip_id: string | null; requested_by: string; cancel_requested: boolean; error_code: string | null }[]>`
    select id, kind, status, host_id, egress_ip_id, requested_by, cancel_requested, error_code from tasks
    where egress_ip_id = ${egressId} order by created_at, id`;
}

const egressCount = async () => Number((await sql()<{ n: string }[]>`select count(*) as n from egress_ips`)[0]!.n);

function expectInvalid(res: TestResponse, field: string, message?: RegExp | string) {
  expect(res.status, res.text).toBe(400);
  expect(res.body.code, res.text).toBe("invalid_request");
  const fields = (res.body.details as { field: string; message: string }[]).map((d) => d.field);
  expect(fields, res.text).toContain(field);
  if (message) {
    const d = (res.body.details as { field: string; message: string }[]).find((x) => x.field === field)!;
    expect(d.message, res.text).toMatch(message);
  }
}

describe("security", () => {
  it("answers 401 without a token and 403 to a user on every egress route, changing nothing", async () => {
    const e = await create(proxyBody());
    const routes: [string, string, unknown?][] = [
      ["POST", "/v1/admin/egress-ips", proxyBody()],
      ["GET", "/v1/admin/egress-ips"],
      ["GET", `/v1/admin/egress-ips/${e.id}`],
      ["PUT", `/v1/admin/egress-ips/${e.id}`, { label: "renamed" }],
      ["DELETE", `/v1/admin/egress-ips/${e.id}`],
    ];
    const before = await egressCount();
    for (const [method, path, body] of routes) {
      const anon = await h.request(method, path, { body });
      expect(anon.status, `${method} ${path}: ${anon.text}`).toBe(401);
      expect(anon.body.code).toBe("unauthorized");
      const asUser = await h.request(method, path, { token: user.token, body });
      expect(asUser.status, `${method} ${path}: ${asUser.text}`).toBe(403);
      expect(asUser.body.code).toBe("forbidden");
    }
    expect(await egressCount()).toBe(before);
    expect((await get(e.id)).body.egress_ip.label).toBe(e.label);
  });
});

describe("POST /v1/admin/egress-ips", () => {
  it("creates the reference WireGuard example with masked secrets and a generated key pair (57)", async () => {
    const peer = peerKey();
    const presharedKey = psk();
    const res = await post({
      label: "hk-wg-01",
      ip_address: "203.0.113.10",
      tunnel_type: "wireguard",
      provider: "manual",
      wg_endpoint: "vpn-provider.example.com:51820",
      wg_public_key: peer,
      wg_preshared_key: presharedKey,
      wg_allowed_ips: "0.0.0.0/0",
      wg_dns_server: "203.0.113.53",
      wg_peer_address: "10.0.0.2/32",
    });
    expect(res.status, res.text).toBe(201);
    expect(Object.keys(res.body)).toEqual(["egress_ip"]);
    const e = res.body.egress_ip;
    expect(Object.keys(e).sort()).toEqual(WG_KEYS);
    expect(e).toMatchObject({
      label: "hk-wg-01",
      ip_address: "203.0.113.10",
      tunnel_type: "wireguard",
      provider: "manual",
      status: "available",
      health: "unknown",
      last_test: null,
      wg_endpoint: "vpn-provider.example.com:51820",
      wg_public_key: peer,
      wg_preshared_key: "***",
      wg_allowed_ips: "0.0.0.0/0",
      wg_dns_server: "203.0.113.53",
      wg_peer_address: "10.0.0.2/32",
      wg_private_key: "***",
      bound_host_id: null,
      binding_id: null,
    });
    expect(e.wg_client_public_key).toMatch(B64_32);
    expect(e.wg_client_public_key).toHaveLength(44);
    expect(e.created_at).toMatch(TS);
    expect(e.updated_at).toMatch(TS);

    // The generated private key is stored (encrypted) and matches the shown public key.
    const s = await stored(e.id);
    secret(s.wg!.privateKey);
    expect(s.wg).toMatchObject({ presharedKey, publicKey: peer, endpoint: "vpn-provider.example.com:51820", peerAddress: "10.0.0.2/32" });
    expect(generateWgKeyPair().publicKey).not.toBe(e.wg_client_public_key);
    const { wgPublicKeyFromPrivate } = await import("../../shared/services/egress/wg-keys.js");
    expect(wgPublicKeyFromPrivate(s.wg!.privateKey)).toBe(e.wg_client_public_key);

    const [ev, ...more] = await egressEvents(e.id);
    expect(more).toEqual([]);
    expect(ev).toMatchObject({ type: "egress.created", level: "info", actor_id: adminId });
    expect(ev!.metadata).toEqual({
      egress_ip_id: e.id,
      label: "hk-wg-01",
      ip_address: "203.0.113.10",
      tunnel_type: "wireguard",
      key_generated: true,
    });
    const again = await get(e.id);
    expect(again.status, again.text).toBe(200);
    expect(again.body).toEqual({ egress_ip: e });
  });

  it("derives wg_client_public_key from a supplied wg_private_key (58)", async () => {
    // The example key pair of the wg(8) manual page.
    const privateKey = secret("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=");
    const e = await create(wgBody({ wg_private_key: privateKey, wg_preshared_key: undefined }));
    expect(e.wg_client_public_key).toBe("HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=");
    expect(e.wg_private_key).toBe("***");
    expect(e.wg_preshared_key).toBeNull();
    expect((await stored(e.id)).wg).toMatchObject({ privateKey, presharedKey: null });
    const [ev] = await egressEvents(e.id, "egress.created");
    expect(ev!.metadata.key_generated).toBe(false);
  });

  it("creates every proxy example of the reference with password and uuid masked (59)", async () => {
    const uuid = secret(randomUUID());
    const examples: [Record<string, unknown>, Record<string, unknown>, string][] = [
      [
        { label: "jp-ss-01", ip_address: "198.51.100.5" },
        { type: "shadowsocks", server: "198.51.100.5", server_port: 8388, method: "aes-256-gcm", password: pass("ss") },
        "proxied",
      ],
      [
        { label: "us-vmess-01", ip_address: "203.0.113.20" },
        { type: "vmess", server: "203.0.113.20", server_port: 443, uuid, security: "auto", alter_id: 0 },
        "proxied",
      ],
      [
        { label: "eu-socks-01", ip_address: "192.0.2.50" },
        { type: "socks", server: "192.0.2.50", server_port: 1080, username: "user", password: pass("socks") },
        "proxied",
      ],
      [
        { label: "sg-trojan-01", ip_address: "203.0.113.30" },
        { type: "trojan", server: "203.0.113.30", server_port: 443, password: pass("trojan"), tls: { enabled: true, server_name: "proxy.example.test" } },
        "proxied",
      ],
      [
        { label: "proxy-http-01", ip_address: "192.0.2.100" },
        { type: "http", server: "192.0.2.100", server_port: 8080, username: "user", password: pass("http") },
        "blocked",
      ],
    ];
    for (const [common, config, udp] of examples) {
      const res = await post({ ...common, tunnel_type: "proxy", provider: "manual", proxy_config: config });
      expect(res.status, res.text).toBe(201);
      const e = res.body.egress_ip;
      expect(Object.keys(e).sort()).toEqual(PROXY_KEYS);
      const masked = { ...config };
      if ("password" in masked) masked.password = "***";
      if ("uuid" in masked) masked.uuid = "***";
      expect(e).toMatchObject({ ...common, tunnel_type: "proxy", status: "available", health: "unknown", proxy_dns_server: null, udp });
      expect(e.proxy_config, res.text).toEqual(masked);
      if ("username" in config) expect(e.proxy_config.username).toBe("user");
      // The worker gets the full object back.
      expect((await stored(e.id)).proxy).toEqual({ config, dnsServer: null });
      const [ev] = await egressEvents(e.id, "egress.created");
      expect(ev!.metadata).toMatchObject({ tunnel_type: "proxy", key_generated: false, ip_address: common.ip_address });
    }
  });

  it("accepts the whole supported sing-box subset and reports udp per docs/egress.md#mode-proxy", async () => {
    const pem = [
      "-----BEGIN CERTIFICATE-----",
      "MIIBkTCCATegAwIBAgIUb11bqdFgCnTpFjirIqkFQ1B5oawwCgYIKoZIzj0EAwIw",
      "HTEbMBkGA1UEAwwScHJveHkuZXhhbXBsZS50ZXN0MCAXDTI2MTEyNzA0MzYwN1oY",
      "DzIxMjYxMTAzMDQzNjA3WjAdMRswGQYDVQQDDBJwcm94eS5leGFtcGxlLnRlc3Qw",
      "WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATkcHI5fMb6eNaSrkuVXYFtqFKmnAxP",
      "q5WxfvvsaQnQW+RkmrWT00ppVm4WvOKVgRx/3CMueWsU2qGHYO9a+pVuo1MwUTAd",
      "BgNVHQ4EFgQU0DVIsrMiUe2to8UYAxFtjEHVfR0wHwYDVR0jBBgwFoAU0DVIsrMi",
      "Ue2to8UYAxFtjEHVfR0wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF",
      "AiEApbUif76uihaCO/k4YsxoNKb9jq79NGIgselCHSkTLgsCIBx+z/JAZDaA6/Ab",
      "MYWf5Z5MnaWWkTgo6pY4H2+Och0A",
      "-----END CERTIFICATE-----",
      "",
    ].join("\n");
    const cases: [Record<string, unknown>, string][] = [
      [{ type: "trojan", server: "proxy.example.test", server_port: 443, password: pass(), tag: "t1",
         tls: { enabled: true, server_name: "proxy.example.test", insecure: false, alpn: ["h2", "http/1.1"], certificate: pem } }, "proxied"],
      [{ type: "trojan", server: "203.0.113.31", server_port: 443, password: pass() }, "proxied"],
      [{ type: "socks", server: "socks.example.test", server_port: 1080, version: "5", network: "tcp" }, "blocked"],
      [{ type: "socks", server: "socks.example.test", server_port: 1080, username: "only-user" }, "proxied"],
      [{ type: "vmess", server: "vmess.example.test", server_port: 443, uuid: secret(randomUUID()), security: "chacha20-poly1305", alter_id: 65535, network: "tcp" }, "blocked"],
      [{ type: "vmess", server: "vmess.example.test", server_port: 1, uuid: secret(randomUUID()) }, "proxied"],
      [ssConfig({ method: "chacha20-ietf-poly1305", network: "tcp", server_port: 65535 }), "blocked"],
      [{ type: "http", server: "http.example.test", server_port: 3128, tls: { enabled: true, server_name: "http.example.test" } }, "blocked"],
    ];
    for (const [config, udp] of cases) {
      const res = await post(proxyBody(config, { proxy_dns_server: "192.0.2.53" }));
      expect(res.status, `${JSON.stringify(config)}: ${res.text}`).toBe(201);
      expect(res.body.egress_ip.udp).toBe(udp);
      expect(res.body.egress_ip.proxy_dns_server).toBe("192.0.2.53");
      expect((await stored(res.body.egress_ip.id)).proxy!.config).toEqual(config);
    }
  });

  it("canonicalises addresses and trims free text", async () => {
    const mapped = await create(proxyBody(ssConfig(), { ip_address: "::ffff:198.51.100.77", label: "  padded label  ", provider: "" }));
    expect(mapped.ip_address).toBe("198.51.100.77");
    expect(mapped.label).toBe("padded label");
    expect(mapped.provider).toBe("");
    const mappedHex = await create(proxyBody(ssConfig(), { ip_address: "::FFFF:c000:024e" }));
    expect(mappedHex.ip_address).toBe("192.0.2.78");
    const v6 = await create(proxyBody(ssConfig(), { ip_address: "2001:DB8:0:0:0:0:0:1" }));
    expect(v6.ip_address).toBe("2001:db8::1");
    const v6b = await create(proxyBody(ssConfig(), { ip_address: "2001:db8:0:1:0:0:1:1" }));
    expect(v6b.ip_address).toBe("2001:db8:0:1::1:1");
    const wg = await create(
      wgBody({ wg_allowed_ips: " 10.0.0.0/8 , 2001:DB8::/32,192.0.2.0/24", wg_peer_address: "10.8.0.2/24", wg_endpoint: "192.0.2.1:1" }),
    );
    expect(wg.wg_allowed_ips).toBe("10.0.0.0/8,2001:db8::/32,192.0.2.0/24");
    expect(wg.wg_peer_address).toBe("10.8.0.2/24");
    const dflt = await create(wgBody({ wg_allowed_ips: undefined, provider: undefined, wg_preshared_key: null }));
    expect(dflt).toMatchObject({ wg_allowed_ips: "0.0.0.0/0", provider: "manual", wg_preshared_key: null });
    const labels = ["'; rm -rf /; '", "$(id)", "`id`", "<script>alert(1)</script>"];
    for (const label of labels) expect((await create(proxyBody(ssConfig(), { label, provider: label }))).label).toBe(label);
  });
});

describe("validation (60, 61)", () => {
  const bad: [string, () => Record<string, unknown>, string, RegExp?][] = [
    ["missing tunnel_type", () => ({ ...proxyBody(), tunnel_type: undefined }), "tunnel_type"],
    ["tunnel_type ipsec", () => proxyBody(ssConfig(), { tunnel_type: "ipsec" }), "tunnel_type"],
    ["proxy type vless", () => proxyBody({ ...ssConfig(), type: "vless" }), "proxy_config.type", /unsupported type/],
    ["proxy type missing", () => proxyBody({ ...ssConfig(), type: undefined }), "proxy_config.type", /required/],
    ["shadowsocks rc4-md5", () => proxyBody(ssConfig({ method: "rc4-md5" })), "proxy_config.method"],
    ["server_port 0", () => proxyBody(ssConfig({ server_port: 0 })), "proxy_config.server_port"],
    ["server_port 70000", () => proxyBody(ssConfig({ server_port: 70000 })), "proxy_config.server_port"],
    ["server_port as a string", () => proxyBody(ssConfig({ server_port: "8388" })), "proxy_config.server_port"],
    ["server_port 1.5", () => proxyBody(ssConfig({ server_port: 1.5 })), "proxy_config.server_port"],
    ["vmess without uuid", () => proxyBody({ type: "vmess", server: "vmess.example.test", server_port: 443 }), "proxy_config.uuid", /required/],
    ["vmess uuid not a UUID", () => proxyBody({ type: "vmess", server: "vmess.example.test", server_port: 443, uuid: "your-uuid" }), "proxy_config.uuid"],
    ["vmess security aes-256-cfb", () => proxyBody({ type: "vmess", server: "v.example.test", server_port: 443, uuid: randomUUID(), security: "aes-256-cfb" }), "proxy_config.security"],
    ["vmess alter_id 65536", () => proxyBody({ type: "vmess", server: "v.example.test", server_port: 443, uuid: randomUUID(), alter_id: 65536 }), "proxy_config.alter_id"],
    ["trojan without password", () => proxyBody({ type: "trojan", server: "t.example.test", server_port: 443 }), "proxy_config.password", /required/],
    ["a transport key", () => proxyBody(ssConfig({ transport: { type: "ws" } })), "proxy_config.transport", /^not supported$/],
    ["a multiplex key", () => proxyBody(ssConfig({ multiplex: { enabled: true } })), "proxy_config.multiplex", /^not supported$/],
    ["a detour key", () => proxyBody(ssConfig({ detour: "direct" })), "proxy_config.detour", /^not supported$/],
    ["a plugin key", () => proxyBody(ssConfig({ plugin: "obfs-local" })), "proxy_config.plugin", /^not supported$/],
    ["tls.insecure true", () => proxyBody({ type: "trojan", server: "t.example.test", server_port: 443, password: "x", tls: { enabled: true, insecure: true } }), "proxy_config.tls.insecure"],
    ["trojan tls disabled", () => proxyBody({ type: "trojan", server: "t.example.test", server_port: 443, password: "x", tls: { enabled: false } }), "proxy_config.tls.enabled"],
    ["tls.reality", () => proxyBody({ type: "trojan", server: "t.example.test", server_port: 443, password: "x", tls: { enabled: true, reality: { enabled: true } } }), "proxy_config.tls.reality", /not supported/],
    ["tls.certificate not PEM", () => proxyBody({ type: "trojan", server: "t.example.test", server_port: 443, password: "x", tls: { certificate: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----" } }), "proxy_config.tls.certificate"],
    ["tls.server_name not a name", () => proxyBody({ type: "trojan", server: "t.example.test", server_port: 443, password: "x", tls: { server_name: "bad name" } }), "proxy_config.tls.server_name"],
    ["tls.alpn with 9 entries", () => proxyBody({ type: "http", server: "h.example.test", server_port: 443, tls: { enabled: true, alpn: Array(9).fill("h2") } }), "proxy_config.tls.alpn"],
    ["tls on shadowsocks", () => proxyBody(ssConfig({ tls: { enabled: true } })), "proxy_config.tls", /not supported/],
    ["network udp", () => proxyBody(ssConfig({ network: "udp" })), "proxy_config.network"],
    ["network on http", () => proxyBody({ type: "http", server: "h.example.test", server_port: 3128, network: "tcp" }), "proxy_config.network", /not supported/],
    ["socks version 4", () => proxyBody({ type: "socks", server: "s.example.test", server_port: 1080, version: "4" }), "proxy_config.version"],
    ["socks version as a number", () => proxyBody({ type: "socks", server: "s.example.test", server_port: 1080, version: 5 }), "proxy_config.version"],
    ["socks password without username", () => proxyBody({ type: "socks", server: "s.example.test", server_port: 1080, password: "x" }), "proxy_config.password", /username/],
    ["http password of 257 characters", () => proxyBody({ type: "http", server: "h.example.test", server_port: 3128, username: "u", password: "p".repeat(257) }), "proxy_config.password"],
    ["a password of ***", () => proxyBody(ssConfig({ password: "***" })), "proxy_config.password"],
    ["server 300.1.1.1", () => proxyBody(ssConfig({ server: "300.1.1.1" })), "proxy_config.server"],
    ["server with a bad label", () => proxyBody(ssConfig({ server: "-bad-.example" })), "proxy_config.server"],
    ["server an IPv6 literal", () => proxyBody(ssConfig({ server: "2001:db8::1" })), "proxy_config.server"],
    ["server missing", () => proxyBody(ssConfig({ server: undefined })), "proxy_config.server", /required/],
    ["proxy_config not an object", () => proxyBody("ss://secret@host" as never), "proxy_config"],
    ["proxy_config missing", () => ({ ...proxyBody(), proxy_config: undefined }), "proxy_config", /required/],
    ["proxy_dns_server a name", () => proxyBody(ssConfig(), { proxy_dns_server: "dns.example.test" }), "proxy_dns_server"],
    ["ip_address 300.1.1.1", () => proxyBody(ssConfig(), { ip_address: "300.1.1.1" }), "ip_address"],
    ["ip_address with a zone", () => proxyBody(ssConfig(), { ip_address: "fe80::1%eth0" }), "ip_address"],
    ["ip_address with leading zeros", () => proxyBody(ssConfig(), { ip_address: "192.0.2.010" }), "ip_address"],
    ["ip_address missing", () => proxyBody(ssConfig(), { ip_address: undefined }), "ip_address", /required/],
    ["label missing", () => proxyBody(ssConfig(), { label: undefined }), "label", /required/],
    ["label with a control character", () => proxyBody(ssConfig(), { label: "a\u0007b" }), "label"],
    ["label of 101 characters", () => proxyBody(ssConfig(), { label: "x".repeat(101) }), "label"],
    ["provider with a newline", () => proxyBody(ssConfig(), { provider: "a\nb" }), "provider"],
    ["status deleted", () => proxyBody(ssConfig(), { status: "deleted" }), "status"],
    ["wg fields on a proxy", () => proxyBody(ssConfig(), { wg_endpoint: "vpn.example.test:51820" }), "wg_endpoint", /not allowed for tunnel_type proxy/],
    ["proxy_config on WireGuard", () => wgBody({ proxy_config: ssConfig() }), "proxy_config", /not allowed for tunnel_type wireguard/],
    ["proxy_dns_server on WireGuard", () => wgBody({ proxy_dns_server: "192.0.2.53" }), "proxy_dns_server", /not allowed/],
    ["regenerate_wg_client_key on create", () => wgBody({ regenerate_wg_client_key: true }), "regenerate_wg_client_key", /unknown field/],
    ["an unknown top-level field", () => wgBody({ health: "passing" }), "health", /unknown field/],
    ["wg_endpoint without a port", () => wgBody({ wg_endpoint: "vpn.example.test" }), "wg_endpoint"],
    ["wg_endpoint port 0", () => wgBody({ wg_endpoint: "vpn.example.test:0" }), "wg_endpoint"],
    ["wg_endpoint port 65536", () => wgBody({ wg_endpoint: "vpn.example.test:65536" }), "wg_endpoint"],
    ["wg_endpoint IPv6", () => wgBody({ wg_endpoint: "[2001:db8::1]:51820" }), "wg_endpoint"],
    ["wg_endpoint missing", () => wgBody({ wg_endpoint: undefined }), "wg_endpoint", /required/],
    ["wg_public_key placeholder", () => wgBody({ wg_public_key: "PeerPublicKeyBase64" }), "wg_public_key"],
    ["wg_public_key of 31 bytes", () => wgBody({ wg_public_key: randomBytes(31).toString("base64") }), "wg_public_key"],
    ["wg_public_key missing", () => wgBody({ wg_public_key: undefined }), "wg_public_key", /required/],
    ["wg_preshared_key placeholder", () => wgBody({ wg_preshared_key: "PresharedKeyBase64" }), "wg_preshared_key"],
    ["wg_private_key of ***", () => wgBody({ wg_private_key: "***" }), "wg_private_key"],
    ["wg_allowed_ips with 65 CIDRs", () => wgBody({ wg_allowed_ips: Array.from({ length: 65 }, (_, i) => `10.${i}.0.0/16`).join(",") }), "wg_allowed_ips"],
    ["wg_allowed_ips prefix 33", () => wgBody({ wg_allowed_ips: "10.0.0.0/33" }), "wg_allowed_ips"],
    ["wg_allowed_ips empty", () => wgBody({ wg_allowed_ips: "" }), "wg_allowed_ips"],
    ["wg_dns_server a name", () => wgBody({ wg_dns_server: "dns.example.test" }), "wg_dns_server"],
    ["wg_dns_server missing", () => wgBody({ wg_dns_server: undefined }), "wg_dns_server", /required/],
    ["wg_peer_address prefix 7", () => wgBody({ wg_peer_address: "10.0.0.2/7" }), "wg_peer_address"],
    ["wg_peer_address without prefix", () => wgBody({ wg_peer_address: "10.0.0.2" }), "wg_peer_address"],
    ["wg_peer_address IPv6", () => wgBody({ wg_peer_address: "fd00::2/128" }), "wg_peer_address"],
    ["wg_peer_address missing", () => wgBody({ wg_peer_address: undefined }), "wg_peer_address", /required/],
  ];

  it.each(bad)("rejects %s with 400 and the dotted field, creating nothing", async (_name, body, field, message) => {
    const before = await egressCount();
    expectInvalid(await post(body()), field, message);
    expect(await egressCount()).toBe(before);
  });

  it("lists every problem of a body at once", async () => {
    const res = await post({
      label: "",
      ip_address: "300.1.1.1",
      tunnel_type: "proxy",
      proxy_config: { type: "shadowsocks", server: "300.1.1.1", server_port: 0, method: "rc4-md5", transport: {} },
      wg_dns_server: "192.0.2.53",
    });
    expect(res.status, res.text).toBe(400);
    const fields = (res.body.details as { field: string }[]).map((d) => d.field).sort();
    expect(fields).toEqual(
      [
        "ip_address",
        "label",
        "proxy_config.method",
        "proxy_config.password",
        "proxy_config.server",
        "proxy_config.server_port",
        "proxy_config.transport",
        "wg_dns_server",
      ].sort(),
    );
  });

  it("rejects a peer key equal to our own public key", async () => {
    const pair = generateWgKeyPair();
    secret(pair.privateKey);
    expectInvalid(await post(wgBody({ wg_private_key: pair.privateKey, wg_public_key: pair.publicKey })), "wg_public_key", /differ/);
  });

  it("answers 409 ip_address_taken for a duplicate ip_address, also in another spelling", async () => {
    const first = await create(proxyBody());
    const dup = await post(wgBody({ ip_address: first.ip_address }));
    expect(dup.status, dup.text).toBe(409);
    expect(dup.body.code).toBe("ip_address_taken");
    const mapped = await post(proxyBody(ssConfig(), { ip_address: `::ffff:${first.ip_address}` }));
    expect(mapped.status, mapped.text).toBe(409);
    expect(mapped.body.code).toBe("ip_address_taken");
    const v6 = await create(proxyBody(ssConfig(), { ip_address: "2001:db8::abcd" }));
    const v6dup = await post(proxyBody(ssConfig(), { ip_address: "2001:0DB8:0000::ABCD" }));
    expect(v6dup.status, v6dup.text).toBe(409);
    expect(v6.ip_address).toBe("2001:db8::abcd");
  });
});

describe("GET /v1/admin/egress-ips/{ipID}", () => {
  it("answers 404 egress_ip_not_found for unknown and malformed ids", async () => {
    for (const id of [randomUUID(), "not-a-uuid", "1"]) {
      for (const [method, body] of [["GET"], ["PUT", { label: "x" }], ["DELETE"]] as [string, unknown?][]) {
        const res = await h.request(method, `/v1/admin/egress-ips/${id}`, { token: admin, body });
        expect(res.status, `${method} ${id}: ${res.text}`).toBe(404);
        expect(res.body.code).toBe("egress_ip_not_found");
      }
    }
  });

  it("validates a PUT body before looking the egress up (docs/api.md#evaluation-order)", async () => {
    expectInvalid(await put(randomUUID(), { label: "\u0000" }), "label");
  });
});

describe("PUT /v1/admin/egress-ips/{ipID}", () => {
  it("changes only wg_endpoint and wg_public_key for the reference update shape (62)", async () => {
    const e = await create(wgBody({ status: "available" }));
    const before = await stored(e.id);
    secret(before.wg!.privateKey);
    await sql()`update egress_ips set health = 'failing' where id = ${e.id}`;
    const newKey = peerKey();
    const res = await put(e.id, { wg_endpoint: "new-endpoint:51820", wg_public_key: newKey });
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body)).toEqual(["egress_ip"]);
    const u = res.body.egress_ip;
    expect(u).toEqual({
      ...e,
      wg_endpoint: "new-endpoint:51820",
      wg_public_key: newKey,
      health: "unknown",
      updated_at: u.updated_at,
    });
    expect(u.updated_at >= e.updated_at).toBe(true);
    const after = await stored(e.id);
    expect(after.wg).toEqual({ ...before.wg, endpoint: "new-endpoint:51820", publicKey: newKey });
    const [ev, ...more] = await egressEvents(e.id, "egress.updated");
    expect(more).toEqual([]);
    expect(ev).toMatchObject({ actor_id: adminId, task_id: null, host_id: null });
    expect(ev!.metadata).toEqual({ egress_ip_id: e.id, changed_fields: ["wg_endpoint", "wg_public_key"] });
  });

  it("writes nothing for a PUT that changes nothing, and keeps health for label/provider changes", async () => {
    const e = await create(wgBody());
    await sql()`update egress_ips set health = 'passing' where id = ${e.id}`;
    const same = await put(e.id, {
      label: e.label,
      ip_address: e.ip_address,
      tunnel_type: "wireguard",
      wg_endpoint: e.wg_endpoint,
      wg_preshared_key: "***",
      wg_private_key: "***",
      wg_public_key: e.wg_public_key,
      regenerate_wg_client_key: false,
    });
    expect(same.status, same.text).toBe(200);
    expect(same.body.egress_ip).toEqual({ ...e, health: "passing" });
    expect(await egressEvents(e.id, "egress.updated")).toEqual([]);
    const empty = await put(e.id, {});
    expect(empty.status, empty.text).toBe(200);

    const renamed = await put(e.id, { label: "renamed", provider: "provider.example" });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.body.egress_ip).toMatchObject({ label: "renamed", provider: "provider.example", health: "passing" });
    const [ev] = await egressEvents(e.id, "egress.updated");
    expect(ev!.metadata.changed_fields).toEqual(["label", "provider"]);
  });

  it("keeps, replaces and clears WireGuard secrets; regenerates our key pair", async () => {
    const first = psk();
    const e = await create(wgBody({ wg_preshared_key: first }));
    const keep = await put(e.id, { wg_preshared_key: "***", wg_private_key: "***" });
    expect(keep.status, keep.text).toBe(200);
    expect((await stored(e.id)).wg!.presharedKey).toBe(first);

    const second = psk();
    const replaced = await put(e.id, { wg_preshared_key: second });
    expect(replaced.body.egress_ip.wg_preshared_key).toBe("***");
    expect((await stored(e.id)).wg!.presharedKey).toBe(second);

    const cleared = await put(e.id, { wg_preshared_key: null });
    expect(cleared.body.egress_ip.wg_preshared_key).toBeNull();
    expect((await stored(e.id)).wg!.presharedKey).toBeNull();

    const ownPrivate = secret(generateWgKeyPair().privateKey);
    const setKey = await put(e.id, { wg_private_key: ownPrivate });
    expect(setKey.status, setKey.text).toBe(200);
    const { wgPublicKeyFromPrivate } = await import("../../shared/services/egress/wg-keys.js");
    expect(setKey.body.egress_ip.wg_client_public_key).toBe(wgPublicKeyFromPrivate(ownPrivate));

    const regen = await put(e.id, { regenerate_wg_client_key: true });
    expect(regen.status, regen.text).toBe(200);
    const now = await stored(e.id);
    secret(now.wg!.privateKey);
    expect(now.wg!.privateKey).not.toBe(ownPrivate);
    expect(regen.body.egress_ip.wg_client_public_key).toBe(wgPublicKeyFromPrivate(now.wg!.privateKey));
    const changes = (await egressEvents(e.id, "egress.updated")).map((x) => x.metadata.changed_fields);
    expect(changes).toEqual([
      ["wg_preshared_key"],
      ["wg_preshared_key"],
      ["wg_private_key", "wg_client_public_key"],
      ["wg_private_key", "wg_client_public_key"],
    ]);

    expectInvalid(await put(e.id, { regenerate_wg_client_key: true, wg_private_key: secret(generateWgKeyPair().privateKey) }), "wg_private_key");
    expectInvalid(await put(e.id, { wg_public_key: regen.body.egress_ip.wg_client_public_key }), "wg_public_key", /differ/);
    expectInvalid(await put(e.id, { wg_private_key: "PrivateKeyBase64" }), "wg_private_key", /base64 of 32 bytes/);
  });

  it('keeps a proxy password sent as "***" or left out, and replaces it with a new one (63)', async () => {
    const original = pass("ss");
    const e = await create(proxyBody(ssConfig({ password: original })));
    const masked = await put(e.id, { proxy_config: { ...e.proxy_config, server_port: 8389 } });
    expect(masked.status, masked.text).toBe(200);
    expect(masked.body.egress_ip.proxy_config).toMatchObject({ server_port: 8389, password: "***" });
    expect((await stored(e.id)).proxy!.config).toMatchObject({ password: original, server_port: 8389 });

    const { password: _omit, ...withoutPassword } = e.proxy_config;
    const absent = await put(e.id, { proxy_config: { ...withoutPassword, server_port: 8390 } });
    expect(absent.status, absent.text).toBe(200);
    expect((await stored(e.id)).proxy!.config).toMatchObject({ password: original, server_port: 8390 });

    const next = pass("ss-new");
    const replaced = await put(e.id, { proxy_config: { ...e.proxy_config, password: next, server_port: 8390 } });
    expect(replaced.status, replaced.text).toBe(200);
    expect(replaced.body.egress_ip.proxy_config.password).toBe("***");
    expect((await stored(e.id)).proxy!.config.password).toBe(next);
    const changes = (await egressEvents(e.id, "egress.updated")).map((x) => x.metadata.changed_fields);
    expect(changes).toEqual([["proxy_config"], ["proxy_config"], ["proxy_config"]]);

    // Re-sending the stored object masked is no change at all.
    const again = await put(e.id, { proxy_config: replaced.body.egress_ip.proxy_config });
    expect(again.status, again.text).toBe(200);
    expect(await egressEvents(e.id, "egress.updated")).toHaveLength(3);
  });

  it("replaces proxy_config as a whole and validates the merged object as on create", async () => {
    const uuid = secret(randomUUID());
    const e = await create(proxyBody({ type: "vmess", server: "vmess.example.test", server_port: 443, uuid, network: "tcp" }));
    expect(e.udp).toBe("blocked");
    // uuid "***" keeps the stored one; dropping `network` removes it.
    const res = await put(e.id, { proxy_config: { type: "vmess", server: "vmess2.example.test", server_port: 443, uuid: "***" } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.egress_ip.proxy_config).toEqual({ type: "vmess", server: "vmess2.example.test", server_port: 443, uuid: "***" });
    expect(res.body.egress_ip.udp).toBe("proxied");
    expect((await stored(e.id)).proxy!.config).toEqual({ type: "vmess", server: "vmess2.example.test", server_port: 443, uuid });

    // Another type: the stored secret does not carry over, so "***" is no value at all.
    expectInvalid(await put(e.id, { proxy_config: { type: "trojan", server: "t.example.test", server_port: 443, password: "***" } }), "proxy_config.password");
    expectInvalid(await put(e.id, { proxy_config: { type: "shadowsocks", server: "s.example.test", server_port: 8388, method: "aes-128-gcm" } }), "proxy_config.password", /required/);
    expectInvalid(await put(e.id, { proxy_config: { type: "vmess", server: "v.example.test", server_port: 443, transport: { type: "grpc" } } }), "proxy_config.transport", /not supported/);
    expectInvalid(await put(e.id, { proxy_config: "vmess://x" }), "proxy_config");
    // A type change with a fresh secret is fine.
    const trojanPassword = pass("trojan");
    const switched = await put(e.id, { proxy_config: { type: "trojan", server: "t.example.test", server_port: 443, password: trojanPassword } });
    expect(switched.status, switched.text).toBe(200);
    expect((await stored(e.id)).proxy!.config).toEqual({ type: "trojan", server: "t.example.test", server_port: 443, password: trojanPassword });
  });

  it("refuses to change tunnel_type and fields of the other type (64)", async () => {
    const wg = await create(wgBody());
    const px = await create(proxyBody());
    expectInvalid(await put(wg.id, { tunnel_type: "proxy" }), "tunnel_type", /cannot be changed/);
    expectInvalid(await put(px.id, { tunnel_type: "wireguard" }), "tunnel_type", /cannot be changed/);
    expectInvalid(await put(wg.id, { proxy_config: ssConfig() }), "proxy_config", /not allowed for tunnel_type wireguard/);
    expectInvalid(await put(px.id, { wg_endpoint: "vpn.example.test:51820" }), "wg_endpoint", /not allowed for tunnel_type proxy/);
    expectInvalid(await put(px.id, { regenerate_wg_client_key: true }), "regenerate_wg_client_key", /not allowed/);
    expectInvalid(await put(px.id, { tunnel_type: "ipsec" }), "tunnel_type");
    expect((await get(wg.id)).body.egress_ip).toEqual(wg);
    expect((await get(px.id)).body.egress_ip).toEqual(px);
    const same = await put(px.id, { tunnel_type: "proxy", status: "disabled" });
    expect(same.status, same.text).toBe(200);
    expect(same.body.egress_ip.status).toBe("disabled");
  });

  it("answers 409 ip_address_taken when a PUT takes another egress's address (61)", async () => {
    const a = await create(proxyBody());
    const b = await create(wgBody());
    const res = await put(b.id, { ip_address: a.ip_address, label: "moved" });
    expect(res.status, res.text).toBe(409);
    expect(res.body.code).toBe("ip_address_taken");
    expect((await get(b.id)).body.egress_ip).toEqual(b);
    expect(await egressEvents(b.id, "egress.updated")).toEqual([]);
    const ok = await put(b.id, { ip_address: `::ffff:${nextIp()}` });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.egress_ip.ip_address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });
});

describe("live reapply (API side of 67)", () => {
  async function boundTo(status: HostStatus) {
    const host = await insertHostRow(sql(), { status });
    const e = await create(proxyBody());
    const bindingId = await insertBindingRow(sql(), host.id, e.id);
    return { host, e, bindingId };
  }

  it("enqueues host.apply-egress for a bound running host when a data-plane field changes", async () => {
    const { host, e, bindingId } = await boundTo("running");
    const res = await put(e.id, { proxy_dns_server: "192.0.2.53" });
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(["egress_ip", "task_id"]);
    expect(res.body.egress_ip).toMatchObject({ bound_host_id: host.id, binding_id: bindingId, proxy_dns_server: "192.0.2.53" });
    const [task, ...more] = await tasksOf(e.id);
    expect(more).toEqual([]);
    expect(task).toMatchObject({ id: res.body.task_id, kind: "host.apply-egress", status: "pending", host_id: host.id, egress_ip_id: e.id, requested_by: adminId });
    const [ev] = await egressEvents(e.id, "egress.updated");
    expect(ev).toMatchObject({ task_id: task!.id, host_id: host.id, user_id: host.userId });
    // The job was handed to the queue under the task's id.
    const job = await h.queues.get("host-ops").getJob(task!.id);
    expect(job?.name).toBe("host.apply-egress");

    // Disabling the egress is a data-plane change too: the host loses internet (fail closed).
    const disabled = await put(e.id, { status: "disabled" });
    expect(disabled.body.task_id, disabled.text).toBeDefined();
    // Label and provider are not.
    const renamed = await put(e.id, { label: "just a name" });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.body.task_id).toBeUndefined();
    expect(await tasksOf(e.id)).toHaveLength(2);
  });

  it("enqueues for starting, creating and rebuilding hosts, and not for any other status", async () => {
    for (const status of ["starting", "creating", "rebuilding"] as HostStatus[]) {
      const { host, e } = await boundTo(status);
      const res = await put(e.id, { proxy_config: ssConfig() });
      expect(res.body.task_id, `${status}: ${res.text}`).toBeDefined();
      expect((await tasksOf(e.id)).map((t) => [t.kind, t.host_id])).toEqual([["host.apply-egress", host.id]]);
    }
    for (const status of ["stopped", "pending", "stopping", "failed", "deleting"] as HostStatus[]) {
      const { e } = await boundTo(status);
      const res = await put(e.id, { proxy_config: ssConfig() });
      expect(res.status, res.text).toBe(200);
      expect(res.body.task_id, `${status}: ${res.text}`).toBeUndefined();
      expect(await tasksOf(e.id)).toEqual([]);
    }
  });

  it("does not enqueue for an unbound egress", async () => {
    const e = await create(wgBody());
    const res = await put(e.id, { wg_dns_server: "192.0.2.54" });
    expect(res.body.task_id).toBeUndefined();
    expect(await tasksOf(e.id)).toEqual([]);
  });
});

describe("DELETE /v1/admin/egress-ips/{ipID} (65)", () => {
  it("deletes an unbound egress, refuses a bound one until it is unbound", async () => {
    const free = await create(proxyBody());
    const res = await del(free.id);
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");
    expect((await get(free.id)).status).toBe(404);
    const [ev] = await egressEvents(free.id, "egress.deleted");
    expect(ev).toMatchObject({ level: "info", actor_id: adminId });
    expect(ev!.metadata).toMatchObject({ label: free.label, ip_address: free.ip_address });

    const host = await insertHostRow(sql(), { status: "stopped" });
    const bound = await create(wgBody());
    const bind = await h.request("POST", "/v1/admin/bindings", { token: admin, body: { host_id: host.id, egress_ip_id: bound.id } });
    expect(bind.status, bind.text).toBe(201);
    const refused = await del(bound.id);
    expect(refused.status, refused.text).toBe(409);
    expect(refused.body.code).toBe("egress_ip_in_use");
    expect((await get(bound.id)).status).toBe(200);
    const unbind = await h.request("DELETE", `/v1/admin/bindings/${bind.body.binding.id}`, { token: admin });
    expect(unbind.status, unbind.text).toBe(204);
    const gone = await del(bound.id);
    expect(gone.status, gone.text).toBe(204);
    expect((await del(bound.id)).status).toBe(404);
    // Its address is free again.
    await create(proxyBody(ssConfig(), { ip_address: bound.ip_address }));
  });

  it("cancels pending egress.test tasks and asks running ones to stop", async () => {
    const e = await create(proxyBody());
    const other = await create(proxyBody());
    const pending = await insertTaskRow(sql(), { kind: "egress.test", status: "pending", egressIpId: e.id, requestedBy: adminId });
    const running = await insertTaskRow(sql(), { kind: "egress.test", status: "running", egressIpId: e.id, requestedBy: adminId });
    const done = await insertTaskRow(sql(), { kind: "egress.test", status: "succeeded", egressIpId: e.id, requestedBy: adminId });
    const others = await insertTaskRow(sql(), { kind: "egress.test", status: "pending", egressIpId: other.id, requestedBy: adminId });
    expect((await del(e.id)).status).toBe(204);
    const rows = Object.fromEntries((await tasksOf(e.id)).map((t) => [t.id, t]));
    expect(rows[pending]).toMatchObject({ status: "canceled", error_code: "canceled" });
    expect(rows[running]).toMatchObject({ status: "running", cancel_requested: true });
    expect(rows[done]).toMatchObject({ status: "succeeded", cancel_requested: false });
    expect((await tasksOf(other.id)).find((t) => t.id === others)).toMatchObject({ status: "pending" });
  });
});

describe("GET /v1/admin/egress-ips (66)", () => {
  let ids: Record<string, string>;
  beforeAll(async () => {
    const hostA = await insertHostRow(sql(), { status: "running" });
    const boundProxy = await create(proxyBody());
    await insertBindingRow(sql(), hostA.id, boundProxy.id);
    const failingWg = await create(wgBody());
    await sql()`update egress_ips set health = 'failing' where id = ${failingWg.id}`;
    const disabledProxy = await create(proxyBody(ssConfig(), { status: "disabled" }));
    ids = { boundProxy: boundProxy.id, failingWg: failingWg.id, disabledProxy: disabledProxy.id };
  });

  type Row = { id: string; tunnel_type: string; health: string; status: string; bound_host_id: string | null; wg_private_key?: string };
  const list = async (q: string) => {
    const res = await h.request("GET", `/v1/admin/egress-ips?limit=200&${q}`, { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(["egress_ips", "limit", "offset", "total"]);
    return res.body as { egress_ips: Row[]; total: number; limit: number; offset: number };
  };

  it("filters by bound, tunnel_type, health and status", async () => {
    const bound = await list("bound=true");
    expect(bound.egress_ips.map((e) => e.id)).toContain(ids.boundProxy);
    expect(bound.egress_ips.every((e) => e.bound_host_id !== null)).toBe(true);
    expect(bound.total).toBe(bound.egress_ips.length);
    const unbound = await list("bound=false");
    expect(unbound.egress_ips.map((e) => e.id)).toEqual(expect.arrayContaining([ids.failingWg, ids.disabledProxy]));
    expect(unbound.egress_ips.every((e) => e.bound_host_id === null)).toBe(true);
    const all = await list("");
    expect(all.total).toBe(bound.total + unbound.total);

    const proxies = await list("tunnel_type=proxy");
    expect(proxies.egress_ips.every((e) => e.tunnel_type === "proxy")).toBe(true);
    expect(proxies.egress_ips.map((e) => e.id)).toEqual(expect.arrayContaining([ids.boundProxy, ids.disabledProxy]));
    expect(proxies.egress_ips.map((e) => e.id)).not.toContain(ids.failingWg);

    const failing = await list("health=failing");
    expect(failing.egress_ips.map((e) => e.id)).toContain(ids.failingWg);
    expect(failing.egress_ips.every((e) => e.health === "failing")).toBe(true);

    const disabled = await list("status=disabled&tunnel_type=proxy&bound=false");
    expect(disabled.egress_ips.map((e) => e.id)).toContain(ids.disabledProxy);
    expect(disabled.egress_ips.every((e) => e.status === "disabled" && e.tunnel_type === "proxy" && e.bound_host_id === null)).toBe(true);

    const wgs = await list("tunnel_type=wireguard");
    expect(wgs.egress_ips.every((e) => e.wg_private_key === "***")).toBe(true);
  });

  it("paginates newest first and validates the query", async () => {
    const all = await list("");
    const page = await h.request("GET", "/v1/admin/egress-ips?limit=2&offset=1", { token: admin });
    expect(page.status, page.text).toBe(200);
    expect(page.body).toMatchObject({ limit: 2, offset: 1, total: all.total });
    expect(page.body.egress_ips.map((e: Row) => e.id)).toEqual(all.egress_ips.slice(1, 3).map((e) => e.id));
    const created = all.egress_ips.map((e) => (e as unknown as { created_at: string }).created_at);
    expect([...created].sort().reverse()).toEqual(created);
    expect((await h.request("GET", "/v1/admin/egress-ips?limit=500", { token: admin })).body.limit).toBe(200);
    for (const q of ["bound=yes", "tunnel_type=ipsec", "health=ok", "status=bound", "limit=0", "offset=-1"]) {
      const res = await h.request("GET", `/v1/admin/egress-ips?${q}`, { token: admin });
      expectInvalid(res, `query.${q.split("=")[0]}`);
    }
  });
});

describe("secrets (docs/api.md#secrets; checklist 178, 179)", () => {
  it("never shows a stored secret in a response, a log line, an event, a task or a column", async () => {
    // One more round trip of everything, with fresh secrets.
    const wgPriv = secret(generateWgKeyPair().privateKey);
    const wg = await create(wgBody({ wg_private_key: wgPriv }));
    const px = await create(proxyBody({ type: "socks", server: "s.example.test", server_port: 1080, username: "u", password: pass("socks") }));
    await put(px.id, { proxy_config: { type: "socks", server: "s.example.test", server_port: 1081, username: "u", password: pass("socks2") } });
    await put(wg.id, { wg_preshared_key: psk(), wg_private_key: secret(generateWgKeyPair().privateKey) });
    await h.request("GET", "/v1/admin/egress-ips?limit=200", { token: admin });

    expect(secrets.length).toBeGreaterThan(20);
    expect(findSecrets(h.responses, secrets)).toEqual([]);
    expect(findSecrets(h.logs, secrets)).toEqual([]);
    const events = await sql()`select * from events`;
    expect(findSecrets([JSON.stringify(events)], secrets)).toEqual([]);
    const taskRows = await sql()`select * from tasks`;
    expect(findSecrets([JSON.stringify(taskRows)], secrets)).toEqual([]);
    const columns = await sql()<{ row: string }[]>`select e::text as row from egress_ips e`;
    expect(columns.length).toBeGreaterThan(10);
    expect(findSecrets(columns.map((c) => c.row), secrets)).toEqual([]);
    // Encrypted columns hold versioned ciphertexts, bound to their row (issue 10 §5).
    const [enc] = await sql()<{ wg_private_key_enc: string; proxy_secrets_enc: string | null }[]>`
      select wg_private_key_enc, proxy_secrets_enc from egress_ips where id = ${wg.id}`;
    expect(enc!.wg_private_key_enc).toMatch(/^v1a:/);
    const [pxRow] = await sql()<{ proxy_secrets_enc: string; proxy_config: Record<string, unknown> }[]>`
      select proxy_secrets_enc, proxy_config from egress_ips where id = ${px.id}`;
    expect(pxRow!.proxy_secrets_enc).toMatch(/^v1a:/);
    expect(pxRow!.proxy_config).toMatchObject({ password: "***", username: "u" });
  });
});
