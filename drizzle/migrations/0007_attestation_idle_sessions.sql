CREATE TABLE "egress_attestations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"host_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"egress_ip_id" uuid NOT NULL,
	"engine_id" text NOT NULL,
	"attested_at" timestamp with time zone DEFAULT now() NOT NULL,
	"verdict" text NOT NULL,
	"error_code" text,
	"expected_ip" text NOT NULL,
	"observed_ip" text,
	"dns_sources" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"latency_ms" integer,
	"duration_ms" integer NOT NULL,
	"action" text DEFAULT 'none' NOT NULL,
	"checks" jsonb DEFAULT '{}'::jsonb NOT NULL,
	CONSTRAINT "attestations_verdict_ck" CHECK ("egress_attestations"."verdict" in ('passed','failed')),
	CONSTRAINT "attestations_action_ck" CHECK ("egress_attestations"."action" in ('none','blocked','recovered'))
);
--> statement-breakpoint
CREATE TABLE "session_recording_chunks" (
	"session_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"data" text NOT NULL,
	CONSTRAINT "session_recording_chunks_session_id_seq_pk" PRIMARY KEY("session_id","seq")
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"kind" text NOT NULL,
	"host_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"login" text NOT NULL,
	"method" text,
	"source_ip" text,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"ended_at" timestamp with time zone,
	"bytes_in" bigint DEFAULT 0 NOT NULL,
	"bytes_out" bigint DEFAULT 0 NOT NULL,
	"end_reason" text,
	"recording" text DEFAULT 'off' NOT NULL,
	"recording_bytes" integer DEFAULT 0 NOT NULL,
	"recording_truncated" boolean DEFAULT false NOT NULL,
	CONSTRAINT "sessions_kind_ck" CHECK ("sessions"."kind" in ('ssh','desktop')),
	CONSTRAINT "sessions_recording_ck" CHECK ("sessions"."recording" in ('off','output','input'))
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"webhook_id" uuid NOT NULL,
	"event_id" uuid NOT NULL,
	"event_type" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"response_status" integer,
	"error" text,
	"duration_ms" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_attempt_at" timestamp with time zone,
	"next_attempt_at" timestamp with time zone,
	CONSTRAINT "deliveries_status_ck" CHECK ("webhook_deliveries"."status" in ('pending','succeeded','failed'))
);
--> statement-breakpoint
CREATE TABLE "webhooks" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"url" text NOT NULL,
	"description" text,
	"event_types" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"secret_enc" text NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "idle_stop_minutes" integer;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "idle_cpu_percent" integer;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "session_recording" text;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "idle_stop_minutes" integer;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "idle_cpu_percent" integer;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "always_on" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "last_active_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "idle_stopped_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "session_recording" text;--> statement-breakpoint
ALTER TABLE "host_egress_bindings" ADD COLUMN "quarantined_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "host_egress_bindings" ADD COLUMN "quarantine_code" text;--> statement-breakpoint
ALTER TABLE "host_egress_bindings" ADD COLUMN "next_attest_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "session_recording_chunks" ADD CONSTRAINT "session_recording_chunks_session_id_sessions_id_fk" FOREIGN KEY ("session_id") REFERENCES "public"."sessions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_webhook_id_webhooks_id_fk" FOREIGN KEY ("webhook_id") REFERENCES "public"."webhooks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "attestations_host_idx" ON "egress_attestations" USING btree ("host_id","attested_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "attestations_egress_idx" ON "egress_attestations" USING btree ("egress_ip_id","attested_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "attestations_at_idx" ON "egress_attestations" USING btree ("attested_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "sessions_started_idx" ON "sessions" USING btree ("started_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "sessions_host_idx" ON "sessions" USING btree ("host_id","started_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "sessions_user_idx" ON "sessions" USING btree ("user_id","started_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "sessions_open_idx" ON "sessions" USING btree ("host_id") WHERE "sessions"."ended_at" is null;--> statement-breakpoint
CREATE INDEX "deliveries_webhook_idx" ON "webhook_deliveries" USING btree ("webhook_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "deliveries_event_idx" ON "webhook_deliveries" USING btree ("event_id");--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_idle_minutes_ck" CHECK ("users"."idle_stop_minutes" between 0 and 525600);--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_idle_cpu_ck" CHECK ("users"."idle_cpu_percent" between 0 and 100);--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_recording_ck" CHECK ("users"."session_recording" in ('off','output','input'));--> statement-breakpoint
ALTER TABLE "hosts" ADD CONSTRAINT "hosts_idle_minutes_ck" CHECK ("hosts"."idle_stop_minutes" between 0 and 525600);--> statement-breakpoint
ALTER TABLE "hosts" ADD CONSTRAINT "hosts_idle_cpu_ck" CHECK ("hosts"."idle_cpu_percent" between 0 and 100);--> statement-breakpoint
ALTER TABLE "hosts" ADD CONSTRAINT "hosts_recording_ck" CHECK ("hosts"."session_recording" in ('off','output','input'));