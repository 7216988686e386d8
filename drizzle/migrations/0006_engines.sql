CREATE TABLE "engines" (
	"id" text PRIMARY KEY NOT NULL,
	"endpoint" text NOT NULL,
	"tls_ca_pem" text,
	"tls_cert_pem" text,
	"tls_key_enc" text,
	"memory_mb" integer,
	"cpus" numeric(7, 2),
	"max_hosts" integer,
	"labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"state" text DEFAULT 'active' NOT NULL,
	"last_seen_at" timestamp with time zone,
	"last_heartbeat_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "engines_id_ck" CHECK ("engines"."id" ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
	CONSTRAINT "engines_state_ck" CHECK ("engines"."state" in ('active','cordoned','draining')),
	CONSTRAINT "engines_endpoint_ck" CHECK ("engines"."endpoint" ~ '^(unix:///|tcp://)'),
	CONSTRAINT "engines_capacity_ck" CHECK (coalesce("engines"."memory_mb", 1) > 0 and coalesce("engines"."cpus", 1) > 0 and coalesce("engines"."max_hosts", 1) >= 0)
);
--> statement-breakpoint
ALTER TABLE "hosts" DROP CONSTRAINT "hosts_status_ck";--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "engine_id" text;--> statement-breakpoint
ALTER TABLE "hosts" ADD CONSTRAINT "hosts_status_ck" CHECK ("hosts"."status" in ('pending','creating','running','stopping','stopped','starting','rebuilding','failed','deleting','unreachable'));--> statement-breakpoint
-- The engine every existing install has: its worker sets the endpoint from DOCKER_SOCKET at start (docs/engines.md).
INSERT INTO "engines" ("id", "endpoint") VALUES ('default', 'unix:///var/run/docker.sock') ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- Host tasks carry their host's engine (its queue); unfinished ones of an upgraded install too.
UPDATE "tasks" SET "engine_id" = "hosts"."engine_id" FROM "hosts" WHERE "hosts"."id" = "tasks"."host_id" AND "tasks"."kind" LIKE 'host.%';
