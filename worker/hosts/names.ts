/** Deterministic Docker object names and labels (docs/architecture.md#containers). */
export const LABEL_MANAGED = "cloud-cli-proxy.managed";
export const LABEL_ROLE = "cloud-cli-proxy.role";
export const LABEL_HOST_ID = "cloud-cli-proxy.host_id";
export const LABEL_TASK_ID = "cloud-cli-proxy.task_id";
/**
 * Which deployment owns an object (its REDIS_PREFIX): several deployments (or test runs) can share
 * one engine, and a reconciler only ever touches its own objects.
 */
export const LABEL_INSTANCE = "cloud-cli-proxy.instance";

export const gatewayName = (hostId: string) => `ccp-gw-${hostId}`;
export const hostContainerName = (hostId: string) => `ccp-host-${hostId}`;
export const homeVolumeName = (hostId: string) => `ccp-home-${hostId}`;

export const labelsFor = (role: "gateway" | "host" | "home", hostId: string): Record<string, string> => ({
  [LABEL_MANAGED]: "true",
  [LABEL_ROLE]: role,
  [LABEL_HOST_ID]: hostId,
});

/** Home of the host user inside the host image. */
export const HOME_DIR = "/home/workspace";
export const HOST_UID = 1000;
