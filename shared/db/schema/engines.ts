import { sql } from "drizzle-orm";
import { check, integer, jsonb, numeric, pgTable, text } from "drizzle-orm/pg-core";
import { createdAt, ts, updatedAt } from "./columns.js";

export const engineStates = ["active", "cordoned", "draining"] as const;
export type EngineState = (typeof engineStates)[number];

/**
 * Docker engines as data (docs/engines.md): each row is one engine with its own queue and
 * workers. `default` is the engine a single-machine install has always had; a worker registers it
 * on its first start from DOCKER_SOCKET, so one engine needs no configuration.
 *
 * How its workers reach it: `unix:///path` (a socket on the worker's machine) or
 * `tcp://address:port` with mutual TLS (the CA that signed the engine's server certificate, and
 * the client certificate and key the workers present; the key is encrypted at rest).
 *
 * Capacity is declared by the operator (null = not limited on that axis): placement at create
 * counts the memory, CPUs and number of the hosts placed on the engine against it.
 */
export const engines = pgTable(
  "engines",
  {
    id: text().primaryKey(),
    endpoint: text().notNull(),
    tlsCaPem: text(),
    tlsCertPem: text(),
    /** Encrypted (shared/crypto/secrets, bound to the engine's id). */
    tlsKeyEnc: text(),
    memoryMb: integer(),
    cpus: numeric({ precision: 7, scale: 2, mode: "number" }),
    maxHosts: integer(),
    labels: jsonb().$type<Record<string, string>>().notNull().default({}),
    state: text({ enum: engineStates }).notNull().default("active"),
    /** The last time one of its workers reached Docker (heartbeat, docs/engines.md#health). */
    lastSeenAt: ts(),
    /** The last time one of its workers sent a heartbeat at all (Docker answering or not). */
    lastHeartbeatAt: ts(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check("engines_id_ck", sql`${t.id} ~ '^[a-z0-9][a-z0-9_-]{0,62}$'`),
    check("engines_state_ck", sql`${t.state} in ('active','cordoned','draining')`),
    check("engines_endpoint_ck", sql`${t.endpoint} ~ '^(unix:///|tcp://)'`),
    check("engines_capacity_ck", sql`coalesce(${t.memoryMb}, 1) > 0 and coalesce(${t.cpus}, 1) > 0 and coalesce(${t.maxHosts}, 1) >= 0`),
  ],
);

export type EngineRow = typeof engines.$inferSelect;
