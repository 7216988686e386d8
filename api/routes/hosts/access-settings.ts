import type { ApiDeps } from "../../deps.js";
import type { AccessSettings } from "../../../shared/services/hosts/access.js";

export const accessSettings = (deps: ApiDeps): AccessSettings => ({
  publicBaseUrl: deps.config.PUBLIC_BASE_URL,
  sshPublicHost: deps.config.SSH_PUBLIC_HOST,
  sshPublicPort: deps.config.SSH_PUBLIC_PORT,
});
