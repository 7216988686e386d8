import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecretUnreadableError } from "../../shared/crypto/secrets.js";
import { loadEgressSecrets } from "../../shared/services/egress/manage.js";
import { generateWgKeyPair } from "../../shared/services/egress/wg-keys.js";
import { type ApiHarness, createApiHarness, findSecrets } from "../../shared/test/api-harness.js";
import { passwordMatches } from "../../sshd/credentials.js";
import type { Target } from "../../sshd/resolve-target.js";
import { toTaskError } from "../../worker/tasks/runner.js";

/**
 * Issue 10 §5: a secret's ciphertext is bound to its table, column and row. The attack: someone
 * who can write one row (SQL access, a restore mix-up) copies another row's ciphertext into it, so
 * that the second egress tunnels with the first one's key, or a host accepts another host's
 * password. Each read then fails cleanly — never a 500, never the other row's value — and writing
 * the secret again repairs the row.
 */
let h: ApiHarness;
let admin: string;
const secrets: string[] = [];
const secret = (v: string) => (secrets.push(v), v);

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
});
afterAll(async () => {
  await h?.close();
});

let ipSeq = 0;
const nextIp = () => `198.18.200.${++ipSeq}`;
const wgBody = () => ({
  label: `wg-${randomBytes(3).toString("hex")}`,
  ip_address: nextIp(),
  tunnel_type: "wireguard",
  provider: "manual",
  wg_endpoint: "vpn.example.test:51820",
  wg_public_key: generateWgKeyPair().publicKey,
  wg_private_key: secret(generateWgKeyPair().privateKey),
  wg_preshared_key: secret(randomBytes(32).toString("base64")),
  wg_dns_server: "198.18.0.53",
  wg_peer_address: "10.0.0.2/32",
});
const ssConfig = (password: string) => ({ type: "shadowsocks", server: "proxy.example.test", server_port: 8388, method: "aes-256-gcm", password });
const proxyBody = (password: string) => ({
  label: `px-${randomBytes(3).toString("hex")}`,
  ip_address: nextIp(),
  tunnel_type: "proxy",
  provider: "manual",
  proxy_config: ssConfig(password),
});

async function create(body: unknown): Promise<{ id: string }> {
  const res = await h.request("POST", "/v1/admin/egress-ips", { token: admin, body });
  expect(res.status, res.text).toBe(201);
  return res.body.egress_ip;
}
const put = (id: string, body: unknown) => h.request("PUT", `/v1/admin/egress-ips/${id}`, { token: admin, body });

describe("ciphertexts copied between rows (issue 10 §5)", () => {
  it("a WireGuard key copied into another egress row does not decrypt there; the data plane read fails as secret_unreadable", async () => {
    const a = await create(wgBody());
    const b = await create(wgBody());
    const aKeys = await loadEgressSecrets(h.database.db, h.deps.secrets, a.id);
    await h.database.sql`
      update egress_ips set wg_private_key_enc = (select wg_private_key_enc from egress_ips where id = ${a.id}),
        wg_preshared_key_enc = (select wg_preshared_key_enc from egress_ips where id = ${a.id})
      where id = ${b.id}`;

    // The worker's read (gateway files, egress test): a clean, typed failure, not A's key.
    const err = await loadEgressSecrets(h.database.db, h.deps.secrets, b.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretUnreadableError);
    expect((err as Error).message).toBe(`the secret in egress_ips.wg_private_key_enc of ${b.id} cannot be decrypted (authentication failed)`);
    expect((err as Error).message).not.toContain(aKeys.wg!.privateKey);
    const te = toTaskError(err);
    expect({ code: te.code, transient: te.transient }).toEqual({ code: "secret_unreadable", transient: false });

    // The API never decrypts to show an egress: GET still answers, masked.
    const shown = await h.request("GET", `/v1/admin/egress-ips/${b.id}`, { token: admin });
    expect(shown.status, shown.text).toBe(200);
    expect(shown.body.egress_ip).toMatchObject({ wg_private_key: "***", wg_preshared_key: "***" });

    // Sending the secrets again repairs the row (the unreadable value counts as different).
    const fixed = await put(b.id, { wg_private_key: secret(generateWgKeyPair().privateKey), wg_preshared_key: secret(randomBytes(32).toString("base64")) });
    expect(fixed.status, fixed.text).toBe(200);
    const bKeys = await loadEgressSecrets(h.database.db, h.deps.secrets, b.id);
    expect(bKeys.wg!.privateKey).not.toBe(aKeys.wg!.privateKey);
  });

  it("proxy secrets copied into another row: an update that keeps them answers 409 secret_unreadable (logged), one that replaces them repairs the row", async () => {
    const aPass = secret(`pw-${randomBytes(9).toString("hex")}`);
    const a = await create(proxyBody(aPass));
    const b = await create(proxyBody(secret(`pw-${randomBytes(9).toString("hex")}`)));
    await h.database.sql`
      update egress_ips set proxy_secrets_enc = (select proxy_secrets_enc from egress_ips where id = ${a.id}) where id = ${b.id}`;

    const logsBefore = h.logs.length;
    for (const body of [{ proxy_config: ssConfig("***") }, { proxy_config: { ...ssConfig("x"), password: undefined, server_port: 8389 } }]) {
      const kept = await put(b.id, body);
      expect(kept.status, kept.text).toBe(409);
      expect(kept.body).toEqual({
        error: "a stored secret of this resource cannot be decrypted; an administrator must set it again",
        code: "secret_unreadable",
      });
      expect(kept.text).not.toContain(aPass);
    }
    const logged = h.logs.slice(logsBefore).filter((l) => l.includes("stored secret unreadable"));
    expect(logged.length).toBe(2);
    expect(logged[0]).toContain(`egress_ips.proxy_secrets_enc of ${b.id}`);
    expect(await loadEgressSecrets(h.database.db, h.deps.secrets, b.id).catch((e: unknown) => e)).toBeInstanceOf(SecretUnreadableError);

    const newPass = secret(`pw-${randomBytes(9).toString("hex")}`);
    const replaced = await put(b.id, { proxy_config: ssConfig(newPass) });
    expect(replaced.status, replaced.text).toBe(200);
    const bNow = await loadEgressSecrets(h.database.db, h.deps.secrets, b.id);
    expect(bNow.proxy!.config.password).toBe(newPass);
  });

  it("a host SSH password copied into another host's row logs in to neither with the first host's password", async () => {
    const ua = await h.createUser();
    const ub = await h.createUser();
    const ha = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: ua.id } });
    const hb = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: ub.id } });
    expect([ha.status, hb.status], ha.text + hb.text).toEqual([202, 202]);
    const rot = await h.request("POST", `/v1/admin/hosts/${ha.body.host.id}/rotate-ssh-password`, { token: admin });
    const aPassword = secret(rot.body.ssh_password);
    const hostRow = async (id: string) => (await h.database.sql<{ id: string; ssh_password_enc: string }[]>`select id, ssh_password_enc from hosts where id = ${id}`)[0]!;
    const target = (row: { id: string; ssh_password_enc: string }) => ({ host: { id: row.id, sshPasswordEnc: row.ssh_password_enc } }) as Target;

    expect(passwordMatches(h.deps.secrets, target(await hostRow(ha.body.host.id)), aPassword)).toBe(true);
    await h.database.sql`
      update hosts set ssh_password_enc = (select ssh_password_enc from hosts where id = ${ha.body.host.id}) where id = ${hb.body.host.id}`;
    // What the SSH proxy checks for a password login to host B.
    expect(passwordMatches(h.deps.secrets, target(await hostRow(hb.body.host.id)), aPassword)).toBe(false);
  });

  it("no secret reached a log line", () => {
    expect(findSecrets(h.logs, secrets)).toEqual([]);
  });
});
