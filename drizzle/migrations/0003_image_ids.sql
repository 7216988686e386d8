CREATE TABLE "engine_images" (
	"engine_id" text PRIMARY KEY NOT NULL,
	"host_image" text NOT NULL,
	"host_image_id" text NOT NULL,
	"gateway_image" text NOT NULL,
	"gateway_image_id" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "image_id" text;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "gateway_image_id" text;