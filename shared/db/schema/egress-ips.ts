import { sql } from "drizzle-orm";
import { check, index, jsonb, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { createdAt, id, updatedAt } from "./columns.js";

export const tunnelTypes = ["wireguard", "proxy"] as const;
export const egressStatuses = ["available", "disabled"] as const;
export const egressHealths = ["unknown", "passing", "failing"] as const;

export const egressIps = pgTable(
  "egress_ips",
  {
    id: id(),
    label: text().notNull(),
    /** Canonical form (IPv4-mapped IPv6 stored as IPv4). */
    ipAddress: text().notNull(),
    tunnelType: text({ enum: tunnelTypes }).notNull(),
    provider: text().notNull().default("manual"),
    status: text({ enum: egressStatuses }).notNull().default("available"),
    health: text({ enum: egressHealths }).notNull().default("unknown"),
    /** Result object of the latest egress.test (docs/api.md#egress-test-api). */
    lastTest: jsonb(),
    // WireGuard
    wgEndpoint: text(),
    wgPublicKey: text(),
    wgPresharedKeyEnc: text(),
    wgAllowedIps: text(),
    wgDnsServer: text(),
    wgPeerAddress: text(),
    wgPrivateKeyEnc: text(),
    wgClientPublicKey: text(),
    // Proxy: the sing-box outbound object with its secret values removed, and those values
    // (password, uuid, …) encrypted separately as one JSON document.
    proxyConfig: jsonb(),
    proxySecretsEnc: text(),
    proxyDnsServer: text(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("egress_ips_ip_address_uq").on(t.ipAddress),
    index("egress_ips_created_at_idx").on(t.createdAt.desc(), t.id.desc()),
    check("egress_ips_tunnel_type_ck", sql`${t.tunnelType} in ('wireguard','proxy')`),
    check("egress_ips_status_ck", sql`${t.status} in ('available','disabled')`),
    check("egress_ips_health_ck", sql`${t.health} in ('unknown','passing','failing')`),
  ],
);

export type EgressIpRow = typeof egressIps.$inferSelect;
