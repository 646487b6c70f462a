-- Sessions also end when idle: the last time one was used, written at most once a minute.
ALTER TABLE sessions ADD COLUMN seen_at BIGINT;
