CREATE TABLE "host_pool" (
	"id" uuid PRIMARY KEY NOT NULL,
	"engine_id" text DEFAULT 'default' NOT NULL,
	"state" text DEFAULT 'warming' NOT NULL,
	"short_id" text NOT NULL,
	"memory_limit_mb" integer NOT NULL,
	"cpu_limit" numeric(6, 2) NOT NULL,
	"pids_limit" integer NOT NULL,
	"disk_limit_mb" integer,
	"timezone" text NOT NULL,
	"home_disk_mb" integer NOT NULL,
	"image_id" text,
	"gateway_image_id" text,
	"host_key_public" text NOT NULL,
	"host_key_private_enc" text NOT NULL,
	"internal_key_public" text NOT NULL,
	"internal_key_private_enc" text NOT NULL,
	"management_address" text,
	"isolation_verified_at" timestamp with time zone,
	"claimed_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "host_pool_state_ck" CHECK ("host_pool"."state" in ('warming','ready','claimed','draining')),
	CONSTRAINT "host_pool_short_id_ck" CHECK ("host_pool"."short_id" ~ '^[a-z0-9]{6}$')
);
--> statement-breakpoint
CREATE UNIQUE INDEX "host_pool_short_id_uq" ON "host_pool" USING btree ("short_id");--> statement-breakpoint
CREATE INDEX "host_pool_engine_state_idx" ON "host_pool" USING btree ("engine_id","state");