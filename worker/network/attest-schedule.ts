/**
 * When a binding is attested next (docs/egress.md#attestation): 75–85 % of the interval from now.
 * Jittered so a fleet's checks spread out instead of firing together; early enough that with the
 * scheduler's tick (a twentieth of the interval) and a check retried once (2 × ~12 s at the default
 * timeouts) a drift is blocked within one default interval (255 + 15 + 24 s < 300 s).
 */
export function nextAttestAt(now: Date, intervalSeconds: number, random: () => number = Math.random): Date {
  return new Date(now.getTime() + intervalSeconds * 1000 * (0.75 + 0.1 * random()));
}
