-- A child run's item, when a `for_each` step called it (its index).
ALTER TABLE runs ADD COLUMN caller_item BIGINT;
