-- Hand-written: signed checkpoints are part of the tamper evidence, append-only like the ledger.
CREATE TRIGGER checkpoints_append_only
  BEFORE UPDATE OR DELETE ON checkpoints
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE TRIGGER checkpoints_no_truncate
  BEFORE TRUNCATE ON checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
