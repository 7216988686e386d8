CREATE TABLE "users" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"username" text NOT NULL,
	"role" text DEFAULT 'user' NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"expires_at" timestamp with time zone,
	"expiry_enforced_for" timestamp with time zone,
	"password_hash" text NOT NULL,
	"token_version" integer DEFAULT 1 NOT NULL,
	"deleted_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "users_role_ck" CHECK ("users"."role" in ('admin','user')),
	CONSTRAINT "users_status_ck" CHECK ("users"."status" in ('active','disabled'))
);
--> statement-breakpoint
CREATE TABLE "ssh_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"label" text DEFAULT '' NOT NULL,
	"key_type" text NOT NULL,
	"fingerprint" text NOT NULL,
	"public_key" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ssh_keys_user_fingerprint_uq" UNIQUE("user_id","fingerprint"),
	CONSTRAINT "ssh_keys_type_ck" CHECK ("ssh_keys"."key_type" in ('ed25519','ecdsa','rsa'))
);
--> statement-breakpoint
CREATE TABLE "hosts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"short_id" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"desired_state" text DEFAULT 'running' NOT NULL,
	"engine_id" text DEFAULT 'default' NOT NULL,
	"image" text,
	"memory_limit_mb" integer DEFAULT 4096 NOT NULL,
	"cpu_limit" numeric(6, 2) DEFAULT 2 NOT NULL,
	"pids_limit" integer DEFAULT 1024 NOT NULL,
	"timezone" text DEFAULT 'UTC' NOT NULL,
	"ssh_password_enc" text NOT NULL,
	"internal_key_private_enc" text,
	"internal_key_public" text,
	"host_key_private_enc" text,
	"host_key_public" text,
	"management_address" text,
	"repair_attempts" integer DEFAULT 0 NOT NULL,
	"repair_not_before" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "hosts_short_id_ck" CHECK ("hosts"."short_id" ~ '^[a-z0-9]{6}$'),
	CONSTRAINT "hosts_status_ck" CHECK ("hosts"."status" in ('pending','creating','running','stopping','stopped','starting','rebuilding','failed','deleting')),
	CONSTRAINT "hosts_desired_ck" CHECK ("hosts"."desired_state" in ('running','stopped','deleted')),
	CONSTRAINT "hosts_memory_ck" CHECK ("hosts"."memory_limit_mb" between 128 and 262144),
	CONSTRAINT "hosts_cpu_ck" CHECK ("hosts"."cpu_limit" between 0.1 and 64),
	CONSTRAINT "hosts_pids_ck" CHECK ("hosts"."pids_limit" between 64 and 131072)
);
--> statement-breakpoint
CREATE TABLE "egress_ips" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"label" text NOT NULL,
	"ip_address" text NOT NULL,
	"tunnel_type" text NOT NULL,
	"provider" text DEFAULT 'manual' NOT NULL,
	"status" text DEFAULT 'available' NOT NULL,
	"health" text DEFAULT 'unknown' NOT NULL,
	"last_test" jsonb,
	"wg_endpoint" text,
	"wg_public_key" text,
	"wg_preshared_key_enc" text,
	"wg_allowed_ips" text,
	"wg_dns_server" text,
	"wg_peer_address" text,
	"wg_private_key_enc" text,
	"wg_client_public_key" text,
	"proxy_config" jsonb,
	"proxy_secrets_enc" text,
	"proxy_dns_server" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "egress_ips_tunnel_type_ck" CHECK ("egress_ips"."tunnel_type" in ('wireguard','proxy')),
	CONSTRAINT "egress_ips_status_ck" CHECK ("egress_ips"."status" in ('available','disabled')),
	CONSTRAINT "egress_ips_health_ck" CHECK ("egress_ips"."health" in ('unknown','passing','failing'))
);
--> statement-breakpoint
CREATE TABLE "host_egress_bindings" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"host_id" uuid NOT NULL,
	"egress_ip_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tasks" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"kind" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"host_id" uuid,
	"egress_ip_id" uuid,
	"requested_by" text NOT NULL,
	"origin" text DEFAULT 'api' NOT NULL,
	"payload" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"attempt" integer DEFAULT 0 NOT NULL,
	"progress_percent" integer DEFAULT 0 NOT NULL,
	"progress_message" text,
	"error_code" text,
	"error_message" text,
	"cancel_requested" boolean DEFAULT false NOT NULL,
	"result" jsonb,
	"steps" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"heartbeat_at" timestamp with time zone,
	"handoff_issued_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	CONSTRAINT "tasks_status_ck" CHECK ("tasks"."status" in ('pending','running','succeeded','failed','canceled')),
	CONSTRAINT "tasks_progress_ck" CHECK ("tasks"."progress_percent" between 0 and 100)
);
--> statement-breakpoint
CREATE TABLE "events" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"type" text NOT NULL,
	"level" text DEFAULT 'info' NOT NULL,
	"message" text NOT NULL,
	"actor_id" uuid,
	"user_id" uuid,
	"host_id" uuid,
	"task_id" uuid,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "events_level_ck" CHECK ("events"."level" in ('info','warn','error'))
);
--> statement-breakpoint
CREATE TABLE "ssh_tickets" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"task_id" uuid NOT NULL,
	"host_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"ticket_hash" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"used_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ssh_tickets_hash_uq" UNIQUE("ticket_hash")
);
--> statement-breakpoint
CREATE TABLE "system_keys" (
	"name" text PRIMARY KEY NOT NULL,
	"private_key_enc" text NOT NULL,
	"public_key" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "retained_volumes" (
	"volume_name" text PRIMARY KEY NOT NULL,
	"host_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "ssh_keys" ADD CONSTRAINT "ssh_keys_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "hosts" ADD CONSTRAINT "hosts_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "host_egress_bindings" ADD CONSTRAINT "host_egress_bindings_host_id_hosts_id_fk" FOREIGN KEY ("host_id") REFERENCES "public"."hosts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "host_egress_bindings" ADD CONSTRAINT "host_egress_bindings_egress_ip_id_egress_ips_id_fk" FOREIGN KEY ("egress_ip_id") REFERENCES "public"."egress_ips"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "users_username_live_uq" ON "users" USING btree (lower("username")) WHERE "users"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "users_created_at_idx" ON "users" USING btree ("created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "ssh_keys_user_idx" ON "ssh_keys" USING btree ("user_id","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "ssh_keys_fingerprint_idx" ON "ssh_keys" USING btree ("fingerprint");--> statement-breakpoint
CREATE UNIQUE INDEX "hosts_short_id_uq" ON "hosts" USING btree ("short_id");--> statement-breakpoint
CREATE UNIQUE INDEX "hosts_user_uq" ON "hosts" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "hosts_created_at_idx" ON "hosts" USING btree ("created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "hosts_status_idx" ON "hosts" USING btree ("status");--> statement-breakpoint
CREATE UNIQUE INDEX "egress_ips_ip_address_uq" ON "egress_ips" USING btree ("ip_address");--> statement-breakpoint
CREATE INDEX "egress_ips_created_at_idx" ON "egress_ips" USING btree ("created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE UNIQUE INDEX "bindings_host_uq" ON "host_egress_bindings" USING btree ("host_id");--> statement-breakpoint
CREATE UNIQUE INDEX "bindings_egress_uq" ON "host_egress_bindings" USING btree ("egress_ip_id");--> statement-breakpoint
CREATE INDEX "tasks_created_at_idx" ON "tasks" USING btree ("created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "tasks_host_idx" ON "tasks" USING btree ("host_id","created_at");--> statement-breakpoint
CREATE INDEX "tasks_status_idx" ON "tasks" USING btree ("status");--> statement-breakpoint
CREATE INDEX "tasks_egress_idx" ON "tasks" USING btree ("egress_ip_id");--> statement-breakpoint
CREATE INDEX "events_created_at_idx" ON "events" USING btree ("created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "events_user_idx" ON "events" USING btree ("user_id","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "events_host_idx" ON "events" USING btree ("host_id","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "events_type_idx" ON "events" USING btree ("type");--> statement-breakpoint
CREATE INDEX "ssh_tickets_expires_idx" ON "ssh_tickets" USING btree ("expires_at");