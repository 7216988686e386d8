import { z } from "zod";
import { engineStates } from "../../db/schema/engines.js";

/**
 * The engine object of docs/api.md#engines, written once: the renderer returns it, the routes
 * document their responses with it, the UI imports its type. The client key (plaintext or
 * ciphertext) is never part of it: TLS shows as the SHA-256 fingerprints of the two certificates.
 */
export const engineHealths = ["ok", "docker_down", "no_worker"] as const;

export const engineView = z.object({
  id: z.string(),
  endpoint: z.string(),
  state: z.enum(engineStates),
  /** ok: a worker reached Docker recently; docker_down: workers beat but Docker does not answer; no_worker: no recent heartbeat. */
  health: z.enum(engineHealths),
  /** null on a unix:// endpoint. Lowercase hex SHA-256 of each certificate's DER. */
  tls: z.object({ ca_sha256: z.string(), cert_sha256: z.string() }).nullable(),
  /** Declared by the operator; null = not limited on that axis. */
  capacity: z.object({ memory_mb: z.number().int().nullable(), cpus: z.number().nullable(), max_hosts: z.number().int().nullable() }),
  /** Summed over the hosts placed on the engine (every status). */
  usage: z.object({ memory_mb: z.number().int(), cpus: z.number() }),
  counts: z.object({ hosts: z.number().int(), running_hosts: z.number().int(), pool_members: z.number().int() }),
  labels: z.record(z.string(), z.string()),
  last_seen_at: z.string().nullable(),
  last_heartbeat_at: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type EngineView = z.output<typeof engineView>;
