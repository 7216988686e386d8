/**
 * Whether a webhook's `event_types` select an event type (docs/api.md#webhooks): an exact name,
 * a prefix ending in `.*` (`egress.*` matches `egress.attestation.failed`, not `egress` itself nor
 * `egressx.y`), or `*` for every event.
 */
export function eventTypeMatches(patterns: readonly string[], type: string): boolean {
  return patterns.some((p) => p === "*" || p === type || (p.endsWith(".*") && type.startsWith(p.slice(0, -1))));
}
