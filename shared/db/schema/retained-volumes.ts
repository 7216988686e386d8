import { pgTable, text, uuid } from "drizzle-orm/pg-core";
import { createdAt } from "./columns.js";

/** Home volumes kept by `DELETE …?keep_home=true`: the reconciler never reaps these. */
export const retainedVolumes = pgTable("retained_volumes", {
  volumeName: text().primaryKey(),
  hostId: uuid().notNull(),
  userId: uuid().notNull(),
  createdAt: createdAt(),
});
