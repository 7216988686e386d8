import type { SshKeyRow } from "../../db/schema/index.js";
import type { SshKeyView } from "../../views/index.js";

/** The key object of docs/api.md#ssh-keys. */
export function renderKey(k: SshKeyRow): SshKeyView {
  return {
    id: k.id,
    user_id: k.userId,
    label: k.label,
    key_type: k.keyType,
    fingerprint: k.fingerprint,
    public_key: k.publicKey,
    created_at: k.createdAt.toISOString(),
  };
}
