ALTER TABLE "hosts" ADD COLUMN "disk_limit_mb" integer;--> statement-breakpoint
ALTER TABLE "hosts" ADD CONSTRAINT "hosts_disk_ck" CHECK ("hosts"."disk_limit_mb" between 256 and 1048576);