-- A paused workflow starts no runs: its cron occurrences pass, its webhook and Run refuse.
ALTER TABLE workflows ADD COLUMN paused_at BIGINT;
