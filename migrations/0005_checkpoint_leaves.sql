CREATE TABLE "checkpoint_leaves" (
	"workspace_id" uuid NOT NULL,
	"sequence" bigint NOT NULL,
	"contact_id" uuid NOT NULL,
	"chain_length" integer NOT NULL,
	"head" text NOT NULL,
	CONSTRAINT "checkpoint_leaves_workspace_id_sequence_contact_id_pk" PRIMARY KEY("workspace_id","sequence","contact_id")
);
--> statement-breakpoint
CREATE INDEX "checkpoint_leaves_contact_idx" ON "checkpoint_leaves" USING btree ("workspace_id","contact_id","sequence" DESC NULLS LAST);
