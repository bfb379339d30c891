-- Hand-written. A replayed signed webhook (the same bytes POSTed again, by Meta's retries or by
-- anyone who captured one) is stored once: one inbox row per (tenancy, sha256 of the raw body).
--
-- workspace_id: the workspace whose own webhook URL received the payload (its own Meta app, signed
-- with its own app secret; docs/webhook.md "Tenancy"); NULL for the operator's URL
-- (WHATSAPP_APP_SECRETS). The unique index treats NULLs as equal, so the operator's payloads are
-- one tenancy too.
--
-- legacy_duplicate_of: rows stored twice before this migration keep their history; every copy
-- after the first names the first here and is left out of the index. Nothing else sets it.
ALTER TABLE "webhook_inbox" ADD COLUMN "workspace_id" uuid;
--> statement-breakpoint
ALTER TABLE "webhook_inbox" ADD CONSTRAINT "webhook_inbox_workspace_id_workspaces_id_fk" FOREIGN KEY ("workspace_id") REFERENCES "public"."workspaces"("id") ON DELETE no action ON UPDATE no action;
--> statement-breakpoint
ALTER TABLE "webhook_inbox" ADD COLUMN "legacy_duplicate_of" bigint;
--> statement-breakpoint
UPDATE "webhook_inbox" i SET "legacy_duplicate_of" = d.first
  FROM (SELECT id, min(id) OVER (PARTITION BY body_sha256) AS first FROM "webhook_inbox") d
 WHERE d.id = i.id AND d.first <> i.id;
--> statement-breakpoint
-- body_sha256 first: a replay finds its first row by the digest alone.
CREATE UNIQUE INDEX "webhook_inbox_body_key" ON "webhook_inbox" USING btree ("body_sha256", "workspace_id") NULLS NOT DISTINCT
 WHERE "legacy_duplicate_of" IS NULL;
--> statement-breakpoint
-- The rows of workspaces' own URLs (a claim is verified by one of them naming its number).
CREATE INDEX "webhook_inbox_workspace_idx" ON "webhook_inbox" USING btree ("workspace_id") WHERE "workspace_id" IS NOT NULL;
