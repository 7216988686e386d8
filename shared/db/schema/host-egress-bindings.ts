import { pgTable, text, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { createdAt, id, ts } from "./columns.js";
import { egressIps } from "./egress-ips.js";
import { hosts } from "./hosts.js";

/** One egress per host and one host per egress: a dedicated IP (unique on both sides). */
export const hostEgressBindings = pgTable(
  "host_egress_bindings",
  {
    id: id(),
    hostId: uuid()
      .notNull()
      .references(() => hosts.id, { onDelete: "cascade" }),
    egressIpId: uuid()
      .notNull()
      .references(() => egressIps.id, { onDelete: "restrict" }),
    /**
     * Continuous attestation (docs/egress.md#attestation): set when an attestation failed and the
     * host's gateway went to blocked mode; cleared when one passes again and the egress is back.
     * While set, every plan of this host's gateway is blocked (start, apply, reconcile).
     */
    quarantinedAt: ts(),
    /** The failed check's code that put the host in quarantine. */
    quarantineCode: text(),
    /** When the attestation scheduler checks this binding next (jittered interval). */
    nextAttestAt: ts(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("bindings_host_uq").on(t.hostId),
    uniqueIndex("bindings_egress_uq").on(t.egressIpId),
  ],
);

export type BindingRow = typeof hostEgressBindings.$inferSelect;
