import { index, pgTable, text, uuid } from "drizzle-orm/pg-core";
import { createdAt, id, ts } from "./columns.js";

/**
 * One-time SSH login tickets minted by the bootstrap handoff (behaviour.md §7.1) and by an entry
 * auth of a running host (§7.3). Only a hash is kept. `task_id` is the bootstrap task; null for
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
