import { loadEgressSecrets as loadFromEgressService, type EgressSecrets } from "../../shared/services/egress/manage.js";
import type { WorkerDeps } from "../deps.js";

/**
 * The one place the data plane reads an egress's decrypted configuration. It delegates to the
 * egress service's `loadEgressSecrets` (shared/services/egress), which owns how secrets are stored;
 * keep this adapter the only importer so a change of that service touches one file here.
 */
export type { EgressSecrets };

/** The egress with its secrets, or null when it no longer exists. Never log or store the result. */
export async function loadEgress(deps: Pick<WorkerDeps, "db" | "secrets">, egressId: string): Promise<EgressSecrets | null> {
  try {
    return await loadFromEgressService(deps.db, deps.secrets, egressId);
  } catch (err) {
    if ((err as { code?: string })?.code === "egress_ip_not_found") return null;
    throw err;
  }
}
