import { pgTable, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { createdAt, id } from "./columns.js";
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
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("bindings_host_uq").on(t.hostId),
    uniqueIndex("bindings_egress_uq").on(t.egressIpId),
  ],
);

export type BindingRow = typeof hostEgressBindings.$inferSelect;
