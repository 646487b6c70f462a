-- A `for_each` item's attempts before its last (each failed and was retried), oldest first:
-- a JSON array of {attempt, error_kind, error_message, started_at, finished_at}. NULL when
-- its first attempt was its last, as for most items.
ALTER TABLE step_items ADD COLUMN earlier_attempts TEXT;
