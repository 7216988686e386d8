import { and, isNotNull, ne, or, type SQL } from "drizzle-orm";
import { engineImages, hosts, type EngineImagesRow, type HostRow } from "../../db/schema/index.js";

/**
 * Whether a host runs an older image than its engine's current one (README "Upgrading"): the host
 * or gateway image id recorded when the host last came up differs from what the engine's worker
 * published. Unknown on either side (no worker has published; a host never brought up) is not
 * outdated: only a known difference is flagged. A host being deleted is never flagged.
 */
export function isImageOutdated(
  h: Pick<HostRow, "status" | "imageId" | "gatewayImageId">,
  current: Pick<EngineImagesRow, "hostImageId" | "gatewayImageId"> | null,
): boolean {
  if (!current || h.status === "deleting") return false;
  return (h.imageId !== null && h.imageId !== current.hostImageId) || (h.gatewayImageId !== null && h.gatewayImageId !== current.gatewayImageId);
}

/** isImageOutdated as SQL, for a query that left-joins engine_images on the host's engine. */
export function imageOutdatedSql(): SQL {
  return and(
    isNotNull(engineImages.engineId),
    ne(hosts.status, "deleting"),
    or(
      and(isNotNull(hosts.imageId), ne(hosts.imageId, engineImages.hostImageId)),
      and(isNotNull(hosts.gatewayImageId), ne(hosts.gatewayImageId, engineImages.gatewayImageId)),
    ),
  )!;
}
