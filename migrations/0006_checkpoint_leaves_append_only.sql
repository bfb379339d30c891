-- Hand-written: the leaves behind signed checkpoints are tamper evidence too, append-only like the
-- ledger and the checkpoints themselves.
CREATE TRIGGER checkpoint_leaves_append_only
  BEFORE UPDATE OR DELETE ON checkpoint_leaves
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE TRIGGER checkpoint_leaves_no_truncate
  BEFORE TRUNCATE ON checkpoint_leaves
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
