/** How the Docker runtime tells an engine that is gone from an operation that failed (docs/engines.md#failures). */

export interface DockerError {
  statusCode?: number;
  code?: string;
  message?: string;
  json?: { message?: string };
}

/**
 * What a dockerd says while it shuts down or has not finished starting: its metadata stores
 * (bolt) are closed, and every volume or container lookup answers 500 "database not open". Seen in
 * the chaos stage's dockerd fault (a stop under load): it is the engine going away, not the
 * host's containers failing, so the task waits for the engine like for a refused connection.
 */
const STOPPING_ENGINE = /\bdatabase not open\b/;

/** Connection-level failures mean the engine is down: transient, retried by the task runner. */
export function isEngineDown(err: unknown): boolean {
  const code = (err as DockerError)?.code;
  const message = (err as DockerError)?.json?.message ?? (err as Error)?.message ?? "";
  if ((err as DockerError)?.statusCode === 500 && STOPPING_ENGINE.test(String(message))) return true;
  // ENOENT/ECONNREFUSED: a local socket or TCP listener that is gone; the unreachable codes: a
  // remote engine whose machine or route is gone (docs/engines.md#failures).
  // A TLS peer that is not the engine (its certificate does not verify against the engine's CA)
  // is no engine at all: nothing is done there, the task waits as for a down engine.
  return [
    "ENOENT", "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "EAI_AGAIN", "EINVAL",
    "SELF_SIGNED_CERT_IN_CHAIN", "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "CERT_SIGNATURE_FAILURE", "ERR_TLS_CERT_ALTNAME_INVALID",
  ].includes(code ?? "");
}

