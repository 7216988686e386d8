import { pgTable, text } from "drizzle-orm/pg-core";
import { updatedAt } from "./columns.js";

/**
 * The images an engine's worker creates hosts from right now (README "Upgrading"): the worker
 * resolves HOST_IMAGE and GATEWAY_IMAGE to Docker image ids at start and every reconcile interval
 * and writes them here. A host whose recorded ids differ runs an older image (`image_outdated`).
 * In Postgres rather than Redis so the flag survives a Redis restart and is one join away.
 */
export const engineImages = pgTable("engine_images", {
  engineId: text().primaryKey(),
  hostImage: text().notNull(),
  hostImageId: text().notNull(),
  gatewayImage: text().notNull(),
  gatewayImageId: text().notNull(),
  updatedAt: updatedAt(),
});

export type EngineImagesRow = typeof engineImages.$inferSelect;
