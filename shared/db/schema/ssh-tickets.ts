import { index, pgTable, text, uuid } from "drizzle-orm/pg-core";
import { createdAt, id, ts } from "./columns.js";

/**
 * One-time SSH login tickets minted by the bootstrap handoff (docs/api.md#bootstrap) and by an entry
 * auth of a running host (docs/api.md#entry). Only a hash is kept. `task_id` is the bootstrap task; null for
 * entry tickets, which no task precedes.
 */
export const sshTickets = pgTable(
  "ssh_tickets",
  {
    id: id(),
    taskId: uuid(),
    hostId: uuid().notNull(),
    userId: uuid().notNull(),
    ticketHash: text().notNull().unique("ssh_tickets_hash_uq"),
    expiresAt: ts().notNull(),
    usedAt: ts(),
    createdAt: createdAt(),
  },
  (t) => [index("ssh_tickets_expires_idx").on(t.expiresAt)],
);
