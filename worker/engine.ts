import { eq, sql } from "drizzle-orm";
import { secretAt, type SecretBox } from "../shared/crypto/secrets.js";
import type { Db } from "../shared/db/client.js";
import { engines, type EngineRow } from "../shared/db/schema/index.js";
import { DEFAULT_ENGINE_ID } from "../shared/queue/contracts.js";

/** How this worker reaches its engine's Docker API (dockerode's connection options). */
export type DockerConnection =
  | { socketPath: string }
  | { protocol: "https"; host: string; port: number; ca: string; cert: string; key: string };

export class EngineNotRegisteredError extends Error {
  constructor(readonly engineId: string) {
    super(`engine "${engineId}" is not registered: add it first (POST /v1/admin/engines or \`admin engines add\`, docs/engines.md)`);
  }
}

/**
 * The engine this worker serves (ENGINE_ID), and how to reach its Docker API (docs/engines.md).
 *
 * `default` is the engine of a single-machine install: its row is created by the migration and its
 * endpoint is this worker's DOCKER_SOCKET, written back so the admin list shows the truth. Every
 * other engine must have been added by an admin; its endpoint and TLS material come from its row.
 */
export async function attachEngine(db: Db, secrets: SecretBox, config: { ENGINE_ID: string; DOCKER_SOCKET: string }): Promise<{ row: EngineRow; connection: DockerConnection }> {
  if (config.ENGINE_ID === DEFAULT_ENGINE_ID) {
    const endpoint = `unix://${config.DOCKER_SOCKET}`;
    await db
      .insert(engines)
      .values({ id: DEFAULT_ENGINE_ID, endpoint })
      .onConflictDoUpdate({ target: engines.id, set: { endpoint, updatedAt: sql`now()` }, where: sql`${engines.endpoint} <> ${endpoint}` });
  }
  const [row] = await db.select().from(engines).where(eq(engines.id, config.ENGINE_ID));
  if (!row) throw new EngineNotRegisteredError(config.ENGINE_ID);
  return { row, connection: connectionOf(row, secrets) };
}

/** dockerode's options for an engine row: a socket path, or TCP with mutual TLS. */
export function connectionOf(row: EngineRow, secrets: SecretBox): DockerConnection {
  if (row.endpoint.startsWith("unix://")) return { socketPath: row.endpoint.slice("unix://".length) };
  const url = new URL(row.endpoint);
  if (!row.tlsCaPem || !row.tlsCertPem || !row.tlsKeyEnc) {
    throw new Error(`engine "${row.id}": a tcp endpoint needs its CA, client certificate and key`);
  }
  return {
    protocol: "https",
    host: url.hostname,
    port: Number(url.port || 2376),
    ca: row.tlsCaPem,
    cert: row.tlsCertPem,
    key: secrets.decrypt(row.tlsKeyEnc, secretAt.engine(row.id)),
  };
}

/** The heartbeat's record in Postgres: when a worker last beat, and when it last reached Docker. */
export async function recordEngineHeartbeat(db: Db, engineId: string, dockerOk: boolean): Promise<void> {
  await db
    .update(engines)
    .set(dockerOk ? { lastHeartbeatAt: sql`now()`, lastSeenAt: sql`now()` } : { lastHeartbeatAt: sql`now()` })
    .where(eq(engines.id, engineId));
}
